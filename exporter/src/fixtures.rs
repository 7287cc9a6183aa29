//! Message definitions beyond the synthetic robots' types, used by the tests and the benchmark:
//! `sensor_msgs/msg/PointCloud2` and a nested custom type that exercises every construct of the
//! `.msg` language (arrays of nested structs, fixed, bounded and unbounded arrays, bounded
//! strings, `byte`/`char`, an empty message, constants and defaults), and a type with the
//! constructs the MCAP Python decoder does not read (`wstring`, ROS 1 `time`/`duration`).

/// Separator line between the blocks of a `ros2msg` definition.
pub const SEPARATOR: &str = "================================================================================";

/// `sensor_msgs/msg/PointCloud2` with its dependencies, as rosbag2 stores it.
pub fn point_cloud2_definition() -> String {
    format!(
        "# This message holds a collection of N-dimensional points\n\
std_msgs/Header header\n\
uint32 height\n\
uint32 width\n\
PointField[] fields\n\
bool    is_bigendian # Is this data bigendian?\n\
uint32  point_step   # Length of a point in bytes\n\
uint32  row_step     # Length of a row in bytes\n\
uint8[] data         # Actual point data, size is (row_step*height)\n\
bool is_dense        # True if there are no invalid points\n\
\n{SEPARATOR}\nMSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n\
\n{SEPARATOR}\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n\
\n{SEPARATOR}\nMSG: sensor_msgs/PointField\n\
uint8 INT8    = 1\nuint8 UINT8   = 2\nuint8 INT16   = 3\nuint8 UINT16  = 4\n\
uint8 INT32   = 5\nuint8 UINT32  = 6\nuint8 FLOAT32 = 7\nuint8 FLOAT64 = 8\n\
string name      # Name of field\n\
uint32 offset    # Offset from start of point struct\n\
uint8  datatype  # Datatype enumeration, see above\n\
uint32 count     # How many elements in the field\n"
    )
}

/// Type name of [`mission_definition`].
pub const MISSION_TYPE: &str = "fleet_msgs/msg/Mission";

/// A nested custom type, `fleet_msgs/msg/Mission`.
pub fn mission_definition() -> String {
    format!(
        "# A mission: nested structs in arrays, every array kind, strings, times\n\
int32 VERSION=2\n\
string KIND = \"survey#1\"\n\
std_msgs/Header header\n\
string<=32 name\n\
Waypoint[] waypoints\n\
Waypoint[2] corners\n\
Waypoint[<=3] extras\n\
float32[3] scale\n\
int16[<=4] small\n\
Empty e\n\
bool[] flags\n\
byte[4] tag\n\
char c\n\
int8 i8 -1\n\
uint16 u16\n\
int64 i64\n\
uint64 u64\n\
string[] tags\n\
\n{SEPARATOR}\nMSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n\
\n{SEPARATOR}\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n\
\n{SEPARATOR}\nMSG: fleet_msgs/Waypoint\n\
geometry_msgs/Point position\nfloat64 speed 1.0\nstring label\nuint8[] blob\nint32[2] ids\n\
\n{SEPARATOR}\nMSG: fleet_msgs/Empty\n# no fields\n\
\n{SEPARATOR}\nMSG: geometry_msgs/Point\nfloat64 x\nfloat64 y\nfloat64 z\n"
    )
}

/// Type name of [`legacy_definition`].
pub const LEGACY_TYPE: &str = "fleet_msgs/msg/Legacy";

/// `wstring` and ROS 1 `time`/`duration` fields.
pub fn legacy_definition() -> String {
    "wstring w\nwstring<=5[] ws\ntime t\nduration d\nstring<=3 s\n".to_string()
}
