//! Deterministic synthetic ROS 2 messages.
//!
//! Every field is a pure function of the arguments `(robot, seq, stamp_ns, ..)`
//! and is computed only with IEEE-754 basic operations (`+ - * /` and `sqrt`,
//! all correctly rounded), so the same inputs give bit-identical messages on
//! every platform. A consumer that knows `(robot, seq, stamp_ns)` for a
//! recorded message can regenerate the expected value and compare it with the
//! decoded one using `==` (no NaNs are ever produced).

use super::cdr::{Header, Image, Imu, LaserScan, Point, Pose, PoseStamped, Quaternion, StringMsg, Time, Vector3};

/// Link name used in the IMU frame id (`robot{robot}/imu_link`).
pub const IMU_LINK: &str = "imu_link";
/// Link name used in the LaserScan frame id (`robot{robot}/laser`).
pub const LASER_LINK: &str = "laser";
/// Link name used in the PoseStamped frame id (`robot{robot}/odom`).
pub const POSE_LINK: &str = "odom";
/// Link name used in the Image frame id (`robot{robot}/camera_optical_frame`).
pub const CAMERA_LINK: &str = "camera_optical_frame";
/// Image encoding produced by [`image`] (3 bytes per pixel).
pub const IMAGE_ENCODING: &str = "rgb8";

/// `robot{robot}/{link}`.
pub fn frame_id(robot: u16, link: &str) -> String {
    format!("robot{robot}/{link}")
}

/// Header with `stamp = Time::from_nanos(stamp_ns)` and `frame_id(robot, link)`.
pub fn header(robot: u16, link: &str, stamp_ns: u64) -> Header {
    Header { stamp: Time::from_nanos(stamp_ns), frame_id: frame_id(robot, link) }
}

/// Unit quaternion (rotation about z) derived from `(robot, seq)`.
fn unit_quaternion(robot: u16, seq: u64) -> Quaternion {
    let a = (seq % 1000) as f64 * 0.002 - 1.0 + f64::from(robot % 16) * 0.01;
    let n = (a * a + 1.0).sqrt();
    Quaternion { x: 0.0, y: 0.0, z: a / n, w: 1.0 / n }
}

fn diag3(v: f64) -> [f64; 9] {
    [v, 0.0, 0.0, 0.0, v, 0.0, 0.0, 0.0, v]
}

/// `sensor_msgs/Imu`. Notably `linear_acceleration.x = robot + seq * 0.001`
/// and `linear_acceleration.z = 9.80665`.
pub fn imu(robot: u16, seq: u64, stamp_ns: u64) -> Imu {
    let r = f64::from(robot);
    let s = seq as f64;
    Imu {
        header: header(robot, IMU_LINK, stamp_ns),
        orientation: unit_quaternion(robot, seq),
        orientation_covariance: diag3(0.001 * f64::from(1 + robot % 4)),
        angular_velocity: Vector3 { x: s * 0.0001, y: -r * 0.01, z: (stamp_ns % 1_000_000_000) as f64 * 1e-9 },
        angular_velocity_covariance: diag3(0.0004),
        linear_acceleration: Vector3 { x: r + s * 0.001, y: (seq % 100) as f64 * 0.01 - 0.5, z: 9.80665 },
        linear_acceleration_covariance: diag3(0.01),
    }
}

/// `sensor_msgs/LaserScan` with `num_ranges` ranges and intensities, sweeping
/// `[-pi, pi]` (so `angle_max == angle_min + (n - 1) * angle_increment`).
pub fn laser_scan(robot: u16, seq: u64, stamp_ns: u64, num_ranges: usize) -> LaserScan {
    use std::f32::consts::PI;
    let angle_increment = if num_ranges > 1 { 2.0 * PI / (num_ranges - 1) as f32 } else { 0.0 };
    let time_increment = if num_ranges > 0 { 0.1 / num_ranges as f32 } else { 0.0 };
    let base = 1.0 + f32::from(robot % 100) * 0.1 + (seq % 50) as f32 * 0.01;
    LaserScan {
        header: header(robot, LASER_LINK, stamp_ns),
        angle_min: -PI,
        angle_max: PI,
        angle_increment,
        time_increment,
        scan_time: 0.1,
        range_min: 0.05,
        range_max: 30.0,
        ranges: (0..num_ranges).map(|i| base + (i % 100) as f32 * 0.05).collect(),
        intensities: (0..num_ranges).map(|i| ((i as u64).wrapping_add(seq) % 256) as f32).collect(),
    }
}

/// `geometry_msgs/PoseStamped` in frame `robot{robot}/odom`.
pub fn pose_stamped(robot: u16, seq: u64, stamp_ns: u64) -> PoseStamped {
    let r = f64::from(robot);
    let s = seq as f64;
    PoseStamped {
        header: header(robot, POSE_LINK, stamp_ns),
        pose: Pose {
            position: Point { x: r * 10.0 + s * 0.01, y: -s * 0.005, z: r * 0.001 },
            orientation: unit_quaternion(robot, seq),
        },
    }
}

/// Value of byte `index` in the data of [`image`]`(robot, seq, ..)`.
pub fn image_byte(robot: u16, seq: u64, index: usize) -> u8 {
    (index as u64).wrapping_add(seq.wrapping_mul(7)).wrapping_add(u64::from(robot).wrapping_mul(13)) as u8
}

/// `sensor_msgs/Image`, `rgb8`, `step = 3 * width`, `data.len() = step * height`.
pub fn image(robot: u16, seq: u64, stamp_ns: u64, width: u32, height: u32) -> Image {
    let step = width.saturating_mul(3);
    let len = (step as usize).saturating_mul(height as usize);
    Image {
        header: header(robot, CAMERA_LINK, stamp_ns),
        height,
        width,
        encoding: IMAGE_ENCODING.to_string(),
        is_bigendian: 0,
        step,
        data: (0..len).map(|i| image_byte(robot, seq, i)).collect(),
    }
}

/// `std_msgs/String` with `data = "robot{robot} seq={seq} stamp_ns={stamp_ns}"`.
pub fn string(robot: u16, seq: u64, stamp_ns: u64) -> StringMsg {
    StringMsg { data: format!("robot{robot} seq={seq} stamp_ns={stamp_ns}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: u64 = 1_700_000_000_250_000_000;

    #[test]
    fn generators_are_deterministic_and_round_trip() {
        for robot in [0u16, 1, 7, 65535] {
            for seq in [0u64, 1, 999, 123_456_789, u64::MAX] {
                let stamp = STAMP.wrapping_add(seq);
                let a = imu(robot, seq, stamp);
                assert_eq!(a, imu(robot, seq, stamp));
                assert_eq!(Imu::decode(&a.encode()).unwrap(), a);

                let s = laser_scan(robot, seq, stamp, 360);
                assert_eq!(s, laser_scan(robot, seq, stamp, 360));
                assert_eq!(LaserScan::decode(&s.encode()).unwrap(), s);

                let p = pose_stamped(robot, seq, stamp);
                assert_eq!(PoseStamped::decode(&p.encode()).unwrap(), p);

                let i = image(robot, seq, stamp, 4, 3);
                assert_eq!(Image::decode(&i.encode()).unwrap(), i);

                let t = string(robot, seq, stamp);
                assert_eq!(StringMsg::decode(&t.encode()).unwrap(), t);
            }
        }
    }

    #[test]
    fn documented_field_values() {
        let m = imu(3, 250, STAMP);
        assert_eq!(m.header.frame_id, "robot3/imu_link");
        assert_eq!(m.header.stamp.as_nanos(), STAMP as i64);
        assert_eq!(m.linear_acceleration.x, 3.0 + 250.0 * 0.001);
        assert_eq!(m.linear_acceleration.z, 9.80665);
        let q = m.orientation;
        let norm = q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w;
        assert!((norm - 1.0).abs() < 1e-12);

        let s = laser_scan(2, 5, STAMP, 1081);
        assert_eq!(s.header.frame_id, "robot2/laser");
        assert_eq!(s.ranges.len(), 1081);
        assert_eq!(s.intensities.len(), 1081);
        assert!(s.ranges.iter().all(|r| r.is_finite() && *r > 0.0));
        assert_eq!(laser_scan(2, 5, STAMP, 0).ranges.len(), 0);
        assert_eq!(laser_scan(2, 5, STAMP, 1).angle_increment, 0.0);

        let p = pose_stamped(4, 10, STAMP);
        assert_eq!(p.header.frame_id, "robot4/odom");
        assert_eq!(p.pose.position.x, 40.0 + 10.0 * 0.01);

        let i = image(1, 2, STAMP, 640, 480);
        assert_eq!(i.header.frame_id, "robot1/camera_optical_frame");
        assert_eq!(i.step, 1920);
        assert_eq!(i.data.len(), 1920 * 480);
        assert_eq!(i.data[100], image_byte(1, 2, 100));
        assert_eq!(i.encoding, "rgb8");

        assert_eq!(string(9, 8, 7).data, "robot9 seq=8 stamp_ns=7");
    }

    #[test]
    fn inputs_change_outputs() {
        assert_ne!(imu(1, 1, STAMP), imu(1, 2, STAMP));
        assert_ne!(imu(1, 1, STAMP), imu(2, 1, STAMP));
        assert_ne!(imu(1, 1, STAMP), imu(1, 1, STAMP + 1));
        assert_ne!(laser_scan(1, 1, STAMP, 10), laser_scan(1, 2, STAMP, 10));
        assert_ne!(pose_stamped(1, 1, STAMP), pose_stamped(1, 2, STAMP));
        assert_ne!(image(1, 1, STAMP, 2, 2), image(1, 2, STAMP, 2, 2));
        assert_ne!(string(1, 1, STAMP), string(1, 2, STAMP));
    }
}
