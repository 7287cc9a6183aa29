//! Property tests of the definition-driven CDR decoder: encode/decode round trips for every type
//! the synthetic robots and the ROS 2 tests use (Imu, LaserScan, PoseStamped, Image, String,
//! PointCloud2, a nested custom type), in both byte orders, several rows per batch; agreement with
//! the typed encoder of the synthetic robots; and hostile bytes that never panic and never leave
//! a partial row behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use exporter::column::{decode_value, Batch};
use exporter::fixtures::{legacy_definition, mission_definition, point_cloud2_definition, LEGACY_TYPE, MISSION_TYPE};
use exporter::plan::{ArrayLen, Node, Plan};
use exporter::value::{encode, Value};
use exporter::{column::Column, msgdef::Primitive};
use ingest::synthetic::{definition, values};
use proptest::collection::vec;
use proptest::prelude::*;

fn plan(type_name: &str) -> Plan {
    let def = match type_name {
        "sensor_msgs/msg/PointCloud2" => point_cloud2_definition(),
        MISSION_TYPE => mission_definition(),
        LEGACY_TYPE => legacy_definition(),
        t => definition(t).unwrap().to_string(),
    };
    Plan::compile(type_name, &def).unwrap()
}

const TYPES: [&str; 8] = [
    "sensor_msgs/msg/Imu",
    "sensor_msgs/msg/LaserScan",
    "geometry_msgs/msg/PoseStamped",
    "sensor_msgs/msg/Image",
    "std_msgs/msg/String",
    "sensor_msgs/msg/PointCloud2",
    MISSION_TYPE,
    LEGACY_TYPE,
];

/// Arbitrary values of a plan node (no NaN, so `==` compares).
fn strategy(node: &Node) -> BoxedStrategy<Value> {
    match node {
        Node::Prim(p) => match p {
            Primitive::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Primitive::I8 => any::<i8>().prop_map(Value::I8).boxed(),
            Primitive::U8 => any::<u8>().prop_map(Value::U8).boxed(),
            Primitive::I16 => any::<i16>().prop_map(Value::I16).boxed(),
            Primitive::U16 => any::<u16>().prop_map(Value::U16).boxed(),
            Primitive::I32 => any::<i32>().prop_map(Value::I32).boxed(),
            Primitive::U32 => any::<u32>().prop_map(Value::U32).boxed(),
            Primitive::I64 => any::<i64>().prop_map(Value::I64).boxed(),
            Primitive::U64 => any::<u64>().prop_map(Value::U64).boxed(),
            Primitive::F32 => any::<f32>().prop_filter("nan", |x| !x.is_nan()).prop_map(Value::F32).boxed(),
            Primitive::F64 => any::<f64>().prop_filter("nan", |x| !x.is_nan()).prop_map(Value::F64).boxed(),
        },
        Node::String | Node::WString => "[a-zA-Z0-9 _/.äß€😀-]{0,12}".prop_map(Value::String).boxed(),
        Node::Struct(s) => {
            let names: Vec<String> = s.fields.iter().map(|(n, _)| n.clone()).collect();
            let fields: Vec<BoxedStrategy<Value>> = s.fields.iter().map(|(_, n)| strategy(n)).collect();
            fields.prop_map(move |vals| Value::Struct(names.iter().cloned().zip(vals).collect())).boxed()
        }
        Node::Array { elem, len } => {
            let range = match len {
                ArrayLen::Fixed(n) => *n..=*n,
                ArrayLen::Sequence { bound: Some(b) } => 0..=(*b as usize).min(4),
                ArrayLen::Sequence { bound: None } => 0..=4,
            };
            if node.is_byte_array() {
                vec(any::<u8>(), range).prop_map(Value::Bytes).boxed()
            } else {
                vec(strategy(elem), range).prop_map(Value::Array).boxed()
            }
        }
    }
}

fn root(p: &Plan) -> Node {
    Node::Struct(p.root.clone())
}

fn messages() -> impl Strategy<Value = (usize, Vec<Value>, bool)> {
    (0..TYPES.len(), any::<bool>()).prop_flat_map(|(t, be)| {
        let p = plan(TYPES[t]);
        (Just(t), vec(strategy(&root(&p)), 1..4), Just(be))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Any value of any of the types encodes (LE or BE) and decodes back, several rows per batch.
    #[test]
    fn round_trip_every_type((t, vals, be) in messages()) {
        let p = plan(TYPES[t]);
        let mut batch = Batch::new(&p);
        for (i, v) in vals.iter().enumerate() {
            let bytes = encode(&p, v, be).unwrap();
            prop_assert_eq!(&decode_value(&p, &bytes).unwrap(), v);
            batch.push(&p, (i as u64, 0, i as u64), &bytes).unwrap();
        }
        for (i, v) in vals.iter().enumerate() {
            prop_assert_eq!(&batch.data.value_at(&root(&p), i), v);
        }
    }

    /// The synthetic robots' typed encoder and the definition-driven decoder agree.
    #[test]
    fn synthetic_messages_decode(robot in 0u16..20, seq in any::<u64>(), stamp in any::<u64>(), n in 0usize..40) {
        let imu = values::imu(robot, seq, stamp);
        let v = decode_value(&plan("sensor_msgs/msg/Imu"), &imu.encode()).unwrap();
        prop_assert_eq!(v.path("header.stamp.sec"), Some(&Value::I32(imu.header.stamp.sec)));
        prop_assert_eq!(v.path("header.stamp.nanosec"), Some(&Value::U32(imu.header.stamp.nanosec)));
        prop_assert_eq!(v.path("header.frame_id"), Some(&Value::String(imu.header.frame_id.clone())));
        prop_assert_eq!(v.path("linear_acceleration.x"), Some(&Value::F64(imu.linear_acceleration.x)));
        prop_assert_eq!(v.path("orientation.w"), Some(&Value::F64(imu.orientation.w)));
        prop_assert_eq!(
            v.path("angular_velocity_covariance"),
            Some(&Value::Array(imu.angular_velocity_covariance.iter().map(|x| Value::F64(*x)).collect()))
        );

        let scan = values::laser_scan(robot, seq, stamp, n);
        let v = decode_value(&plan("sensor_msgs/msg/LaserScan"), &scan.encode()).unwrap();
        prop_assert_eq!(v.path("ranges"), Some(&Value::Array(scan.ranges.iter().map(|x| Value::F32(*x)).collect())));
        prop_assert_eq!(v.path("intensities"), Some(&Value::Array(scan.intensities.iter().map(|x| Value::F32(*x)).collect())));
        prop_assert_eq!(v.path("angle_increment"), Some(&Value::F32(scan.angle_increment)));

        let pose = values::pose_stamped(robot, seq, stamp);
        let v = decode_value(&plan("geometry_msgs/msg/PoseStamped"), &pose.encode()).unwrap();
        prop_assert_eq!(v.path("pose.position.x"), Some(&Value::F64(pose.pose.position.x)));
        prop_assert_eq!(v.path("pose.orientation.z"), Some(&Value::F64(pose.pose.orientation.z)));

        let img = values::image(robot, seq, stamp, (n as u32).max(1), 3);
        let v = decode_value(&plan("sensor_msgs/msg/Image"), &img.encode()).unwrap();
        prop_assert_eq!(v.path("data"), Some(&Value::Bytes(img.data.clone())));
        prop_assert_eq!(v.path("step"), Some(&Value::U32(img.step)));
        prop_assert_eq!(v.path("encoding"), Some(&Value::String(img.encoding.clone())));

        let s = values::string(robot, seq, stamp);
        let v = decode_value(&plan("std_msgs/msg/String"), &s.encode()).unwrap();
        prop_assert_eq!(v.path("data"), Some(&Value::String(s.data)));
    }

    /// Hostile bytes never panic; a failed message leaves the batch as it was, and the batch
    /// still takes the next valid message.
    #[test]
    fn hostile_bytes_never_panic_nor_leave_partial_rows(
        t in 0..TYPES.len(),
        junk in vec(any::<u8>(), 0..300),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let p = plan(TYPES[t]);
        let good = encode(&p, &strategy(&root(&p)).new_tree(&mut proptest::test_runner::TestRunner::deterministic()).unwrap().current(), false).unwrap();
        let mut mutated = good.clone();
        for (i, b) in &flips {
            let at = i.index(mutated.len());
            mutated[at] = *b;
        }
        let mut with_header = vec![0, 1, 0, 0];
        with_header.extend_from_slice(&junk);
        let cut_at = cut.index(good.len() + 1);
        for bytes in [&junk[..], &with_header[..], &mutated[..], &good[..cut_at]] {
            let mut batch = Batch::new(&p);
            batch.push(&p, (1, 1, 1), &good).unwrap();
            let before = batch.clone();
            if batch.push(&p, (2, 2, 2), bytes).is_err() {
                prop_assert_eq!(&batch, &before);
            }
            let rows = batch.rows();
            batch.push(&p, (3, 3, 3), &good).unwrap();
            prop_assert_eq!(batch.data.value_at(&root(&p), rows), decode_value(&p, &good).unwrap());
            prop_assert_eq!(batch.data.len(), rows + 1);
        }
    }
}

#[test]
fn huge_declared_lengths_are_rejected_before_allocating() {
    let p = plan("sensor_msgs/msg/LaserScan");
    let mut b = vec![0, 1, 0, 0];
    b.extend_from_slice(&[0; 8]); // stamp
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // "" + pad
    b.extend_from_slice(&[0; 28]); // 7 float32
    b.extend_from_slice(&0x4000_0000u32.to_le_bytes()); // ranges: 2^30 elements
    assert!(decode_value(&p, &b).is_err());
    // a hostile definition: a huge fixed array
    let p = Plan::compile("a/B", "float64[4000000000] x").unwrap();
    assert!(decode_value(&p, &[0, 1, 0, 0, 1, 2, 3]).is_err());
    assert!(matches!(Batch::new(&p).data, Column::Struct(_)));
}

#[test]
fn big_endian_alignment_counts_from_after_the_header() {
    // struct { uint8 a; float64 b; } big endian: a at 4, padding 5..12, b at 12.
    let p = Plan::compile("a/B", "uint8 a\nfloat64 b\n").unwrap();
    let mut bytes = vec![0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&1.5f64.to_be_bytes());
    let v = decode_value(&p, &bytes).unwrap();
    assert_eq!(v.path("a"), Some(&Value::U8(7)));
    assert_eq!(v.path("b"), Some(&Value::F64(1.5)));
}
