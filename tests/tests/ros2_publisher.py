"""ROS 2 test and demo publisher (rclpy): simulated robots publishing known values.

Per robot `/<robot>/`: chatter (std_msgs/String), imu (sensor_msgs/Imu), pose
(geometry_msgs/PoseStamped), odom (nav_msgs/Odometry: outside r2r's build-time filter), all
reliable; robot 1 also has scan_be (best effort), robot 2 map_tl (transient local, published
before any subscriber exists). Halfway, /<last robot>/late is created.
With --no-namespace (one robot) the topics are /<name>: a robot alone on its ROS domain.
With --qos-change, /<robot 1>/qos_change starts with one reliable transient-local publisher
(history published before any subscriber exists); halfway a best-effort publisher joins the
topic, which a reliable reader does not match: the recorder must re-subscribe best effort
(qos_match_s in the last line says when the new publisher matched; null if never). Also
/<last robot>/qos_up: a best-effort publisher, replaced at that point by a reliable
transient-local one that publishes TRANSIENT_COUNT messages at once and then waits until the
recorder's subscription is reliable and transient local (qos_up_match_s; null if never).

Every message is serialized with rclpy.serialization.serialize_message and published as those
bytes (publish_raw), so the CDR on the wire is exactly what is written, as a JSON line
{"topic", "type", "hex"}, to --out: a test compares the recorded bytes with it. (Publishing the
message object instead would re-serialize it, and CDR alignment padding is not zeroed by the
serializer, so two serializations of one message can differ in their padding bytes.)
The last line is {"done": true, "late_match_s": ..., "qos_match_s": ..., "qos_up_match_s": ...}.

  python ros2_publisher.py --robots robot1,robot2 --count 300 --rate 100 --out pub.jsonl
  python ros2_publisher.py --robots robot1,robot2 --count 0          # demo: run until killed
"""

import argparse
import json
import math
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu
from std_msgs.msg import String

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
BEST_EFFORT = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
TRANSIENT = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TRANSIENT_COUNT = 5


def stamp(msg, r, i):
    msg.header.stamp.sec = 1_700_000_000 + i
    msg.header.stamp.nanosec = (r * 1_000_003 + i * 7919) % 1_000_000_000


def chatter(r, i):
    return String(data=f"hello from robot{r}: {i}")


def imu(r, i):
    m = Imu()
    stamp(m, r, i)
    m.header.frame_id = f"robot{r}/imu"
    a = i * 0.01 + r
    m.orientation.x, m.orientation.y, m.orientation.z, m.orientation.w = 0.0, 0.0, math.sin(a / 2), math.cos(a / 2)
    m.angular_velocity.z = 0.1 * r + i * 1e-3
    m.linear_acceleration.x, m.linear_acceleration.z = math.sin(a), 9.80665
    m.orientation_covariance = [0.01 * k + i for k in range(9)]
    m.linear_acceleration_covariance[8] = float(i)
    return m


def pose(r, i):
    m = PoseStamped()
    stamp(m, r, i)
    m.header.frame_id = "map"
    m.pose.position.x, m.pose.position.y = float(r) + math.cos(i * 0.01), math.sin(i * 0.01)
    m.pose.orientation.w = 1.0
    return m


def odom(r, i):
    m = Odometry()
    stamp(m, r, i)
    m.header.frame_id, m.child_frame_id = "odom", f"robot{r}/base_link"
    m.pose.pose.position.x = i * 0.05
    m.twist.twist.linear.x = 0.5 + r
    m.pose.covariance = [float(k * r) for k in range(36)]
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--robots", default="robot1,robot2")
    ap.add_argument("--count", type=int, default=300, help="messages per topic; 0 = until killed")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--late-count", type=int, default=50)
    ap.add_argument("--out", default=None)
    ap.add_argument("--match-timeout", type=float, default=30.0)
    ap.add_argument("--no-namespace", action="store_true", help="one robot, topics /<name>")
    ap.add_argument("--qos-change", action="store_true", help="add /<robot 1>/qos_change (see above)")
    ap.add_argument("--stray", default=None,
                    help="also publish std_msgs/String on this topic, without waiting for a subscriber")
    args = ap.parse_args()
    robots = [r for r in args.robots.split(",") if r]
    if args.no_namespace and len(robots) != 1:
        ap.error("--no-namespace takes exactly one robot")

    def ns(robot):
        return "" if args.no_namespace else f"/{robot}"
    out = open(args.out, "w") if args.out else None

    def send(pub, topic, type_name, msg):
        data = serialize_message(msg)
        pub.publish(data)
        if out:
            out.write(json.dumps({"topic": topic, "type": type_name, "hex": data.hex()}) + "\n")

    rclpy.init()
    node = rclpy.create_node("fleetrec_test_publisher")
    streams = []  # (publisher, topic, type name, make(r, i), robot number)
    kinds = [("chatter", String, "std_msgs/msg/String", chatter), ("imu", Imu, "sensor_msgs/msg/Imu", imu),
             ("pose", PoseStamped, "geometry_msgs/msg/PoseStamped", pose),
             ("odom", Odometry, "nav_msgs/msg/Odometry", odom)]
    for n, robot in enumerate(robots, start=1):
        for name, cls, type_name, make in kinds:
            topic = f"{ns(robot)}/{name}"
            streams.append((node.create_publisher(cls, topic, RELIABLE), topic, type_name, make, n))
    best_effort = None
    if robots:
        topic = f"{ns(robots[0])}/scan_be"
        best_effort = (node.create_publisher(String, topic, BEST_EFFORT), topic)
    if len(robots) > 1:
        topic = f"{ns(robots[1])}/map_tl"
        tl = node.create_publisher(String, topic, TRANSIENT)
        for i in range(TRANSIENT_COUNT):
            send(tl, topic, "std_msgs/msg/String", String(data=f"map version {i}"))
    qos_change = None  # [topic, reliable transient-local publisher, best-effort publisher or None]
    if args.qos_change and robots:
        topic = f"{ns(robots[0])}/qos_change"
        qos_change = [topic, node.create_publisher(String, topic, TRANSIENT), None]
        for i in range(TRANSIENT_COUNT):
            send(qos_change[1], topic, "std_msgs/msg/String", String(data=f"qos history {i}"))
    qos_up = None  # [topic, publisher (best effort, then reliable transient local)]
    if args.qos_change and robots:
        topic = f"{ns(robots[-1])}/qos_up"
        qos_up = [topic, node.create_publisher(String, topic, BEST_EFFORT)]

    stray = (node.create_publisher(String, args.stray, RELIABLE), args.stray) if args.stray else None

    # Volatile reliable topics lose what is published before the recorder matches: wait for it.
    deadline = time.monotonic() + args.match_timeout
    pubs = [s[0] for s in streams] + ([best_effort[0]] if best_effort else [])
    pubs += [qos_change[1], qos_up[1]] if qos_change else []
    while any(p.get_subscription_count() == 0 for p in pubs):
        if time.monotonic() > deadline:
            print("publisher: recorder did not subscribe in time", file=sys.stderr)
            return 1
        time.sleep(0.01)
    print("publisher: all topics matched", file=sys.stderr, flush=True)

    period = 1.0 / args.rate
    late = None
    late_match_s = None
    qos_match_s = None
    qos_up_match_s = None
    next_t = time.monotonic()
    i = 0
    while args.count == 0 or i < args.count:
        for pub, topic, type_name, make, r in streams:
            send(pub, topic, type_name, make(r, i))
        if best_effort:
            send(best_effort[0], best_effort[1], "std_msgs/msg/String", String(data=f"best effort {i}"))
        if stray:
            send(stray[0], stray[1], "std_msgs/msg/String", String(data=f"stray {i}"))
        if qos_change:
            topic, reliable, joined = qos_change
            send(reliable, topic, "std_msgs/msg/String", String(data=f"qos reliable {i}"))
            kind = "reliable" if joined else "best effort"
            send(qos_up[1], qos_up[0], "std_msgs/msg/String", String(data=f"qos up {kind} {i}"))
            if joined:
                send(joined, topic, "std_msgs/msg/String", String(data=f"qos best effort {i}"))
            elif i == max(args.count // 3, 1):
                t0 = time.monotonic()
                joined = node.create_publisher(String, topic, BEST_EFFORT)
                while joined.get_subscription_count() == 0 and time.monotonic() < t0 + args.match_timeout:
                    time.sleep(0.005)
                if joined.get_subscription_count() > 0:
                    qos_match_s = time.monotonic() - t0
                print(f"publisher: {topic} best-effort publisher matched after {qos_match_s} s", file=sys.stderr,
                      flush=True)
                qos_change[2] = joined
                # /qos_up: the best-effort publisher goes, a reliable transient-local one comes.
                topic = qos_up[0]
                node.destroy_publisher(qos_up[1])
                qos_up[1] = node.create_publisher(String, topic, TRANSIENT)
                for k in range(TRANSIENT_COUNT):
                    send(qos_up[1], topic, "std_msgs/msg/String", String(data=f"qos up history {k}"))

                def upgraded():
                    return any(e.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                               and e.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                               for e in node.get_subscriptions_info_by_topic(topic))
                t0 = time.monotonic()
                while not upgraded() and time.monotonic() < t0 + args.match_timeout:
                    time.sleep(0.005)
                qos_up_match_s = time.monotonic() - t0 if upgraded() else None
                print(f"publisher: {topic} re-subscribed reliable transient local after {qos_up_match_s} s",
                      file=sys.stderr, flush=True)
                next_t = time.monotonic()
        if late is None and robots and i == max(args.count // 2, 1):
            topic = f"{ns(robots[-1])}/late"
            t0 = time.monotonic()
            late = (node.create_publisher(String, topic, RELIABLE), topic)
            while late[0].get_subscription_count() == 0 and time.monotonic() < t0 + args.match_timeout:
                time.sleep(0.005)
            late_match_s = time.monotonic() - t0
            print(f"publisher: {topic} recorded after {late_match_s:.3f} s", file=sys.stderr, flush=True)
            for k in range(args.late_count):
                send(late[0], topic, "std_msgs/msg/String", String(data=f"late {k}"))
            next_t = time.monotonic()
        i += 1
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    # Reliable delivery completes asynchronously: give it time before the writers go away.
    time.sleep(2.0)
    if out:
        out.write(json.dumps({"done": True, "late_match_s": late_match_s, "qos_match_s": qos_match_s,
                              "qos_up_match_s": qos_up_match_s,
                              "count": args.count}) + "\n")
        out.close()
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
