//! Hand-written ROS 2 CDR (plain CDR / XCDR1) writer and reader.
//!
//! This covers the wire format that `rmw_fastrtps` and `rmw_cyclonedds` use for
//! ordinary ROS 2 messages (no `@key`, no optional/mutable members):
//!
//! * a 4-byte encapsulation header; the writer always emits `00 01 00 00`
//!   (CDR, little endian), the reader accepts `00 01` (CDR_LE) and `00 00`
//!   (CDR_BE); the two option bytes are ignored;
//! * every primitive of size `n` is aligned to `n` (8-byte types to 8),
//!   counted from the first byte *after* the encapsulation header;
//! * `string` = `u32` length including the NUL terminator, the bytes, NUL;
//! * `T[]` / `sequence<T>` = `u32` element count, then the elements;
//! * `T[N]` = the `N` elements only.
//!
//! The reader never panics: every access is bounds-checked, sequence lengths
//! are checked against the remaining input before anything is allocated, and
//! all failures are reported as [`CdrError`]. Offsets in errors are absolute
//! byte offsets into the input buffer (the encapsulation header included).
//!
//! Trailing bytes after a complete message are ignored (DDS payloads may carry
//! up to 3 bytes of end padding).

use std::fmt;

/// Encapsulation header written by [`CdrWriter`]: CDR, little endian, no options.
pub const ENCAPSULATION_CDR_LE: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Size of the encapsulation header.
pub const ENCAPSULATION_LEN: usize = 4;

/// Errors reported by [`CdrReader`] and the `decode` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdrError {
    /// The input ended: `need` bytes were required starting at `offset`.
    Truncated { offset: usize, need: usize },
    /// The encapsulation identifier (first two bytes) is not CDR_LE / CDR_BE.
    BadEncapsulation { found: [u8; 2] },
    /// The string starting at `offset` (its first character byte) is not
    /// NUL-terminated or is not valid UTF-8.
    BadString { offset: usize },
    /// The string / sequence whose length field is at `offset` declares `len`
    /// bytes or elements, more than the remaining input can hold.
    TooLong { offset: usize, len: usize },
}

impl fmt::Display for CdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CdrError::Truncated { offset, need } => {
                write!(f, "CDR input truncated: need {need} byte(s) at offset {offset}")
            }
            CdrError::BadEncapsulation { found: [a, b] } => {
                write!(f, "unsupported CDR encapsulation {a:02x} {b:02x} (expected 00 01 or 00 00)")
            }
            CdrError::BadString { offset } => {
                write!(f, "invalid CDR string at offset {offset} (missing NUL or not UTF-8)")
            }
            CdrError::TooLong { offset, len } => {
                write!(f, "CDR length {len} at offset {offset} exceeds the remaining input")
            }
        }
    }
}

impl std::error::Error for CdrError {}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// Little-endian CDR writer. Starts with the `00 01 00 00` encapsulation header.
#[derive(Debug, Clone)]
pub struct CdrWriter {
    buf: Vec<u8>,
}

impl Default for CdrWriter {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! write_prim {
    ($($name:ident: $t:ty),* $(,)?) => {
        $(
            #[doc = concat!("Write a `", stringify!($t), "` (aligned to its size).")]
            pub fn $name(&mut self, v: $t) {
                self.align(std::mem::size_of::<$t>());
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
        )*
    };
}

impl CdrWriter {
    /// New writer containing only the encapsulation header.
    pub fn new() -> Self {
        Self::with_capacity(64)
    }

    /// New writer with room for `cap` payload bytes.
    pub fn with_capacity(cap: usize) -> Self {
        let mut buf = Vec::with_capacity(cap.saturating_add(ENCAPSULATION_LEN));
        buf.extend_from_slice(&ENCAPSULATION_CDR_LE);
        CdrWriter { buf }
    }

    /// Current payload offset (bytes written after the encapsulation header).
    pub fn position(&self) -> usize {
        self.buf.len().saturating_sub(ENCAPSULATION_LEN)
    }

    /// Everything written so far, encapsulation header included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Finish and return the encoded bytes (header included). No end padding
    /// is added.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Pad with zeros so the payload offset is a multiple of `n`.
    pub fn align(&mut self, n: usize) {
        if n > 1 {
            let pad = (n - self.position() % n) % n;
            self.buf.resize(self.buf.len().saturating_add(pad), 0);
        }
    }

    write_prim!(
        write_u8: u8,
        write_i8: i8,
        write_u16: u16,
        write_i16: i16,
        write_u32: u32,
        write_i32: i32,
        write_u64: u64,
        write_i64: i64,
        write_f32: f32,
        write_f64: f64,
    );

    /// Write a `bool` as one byte (0 or 1).
    pub fn write_bool(&mut self, v: bool) {
        self.write_u8(u8::from(v));
    }

    /// Write a sequence / string length prefix. Lengths above `u32::MAX`
    /// cannot be represented in CDR and are clamped (producing a corrupt
    /// message rather than a panic).
    pub fn write_len(&mut self, len: usize) {
        self.write_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }

    /// Write a `string`: u32 length (including NUL), bytes, NUL.
    pub fn write_string(&mut self, s: &str) {
        self.write_len(s.len().saturating_add(1));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// Write a `uint8[]` / `byte[]` sequence: u32 count, bytes.
    pub fn write_bytes(&mut self, v: &[u8]) {
        self.write_len(v.len());
        self.buf.extend_from_slice(v);
    }

    /// Write a `float32[]` sequence: u32 count, elements.
    pub fn write_seq_f32(&mut self, v: &[f32]) {
        self.write_len(v.len());
        self.write_array_f32(v);
    }

    /// Write a `float64[]` sequence: u32 count, then (if non-empty) padding to
    /// 8 and the elements.
    pub fn write_seq_f64(&mut self, v: &[f64]) {
        self.write_len(v.len());
        self.write_array_f64(v);
    }

    /// Write a fixed `float32[N]` array (elements only).
    pub fn write_array_f32(&mut self, v: &[f32]) {
        if !v.is_empty() {
            self.align(4);
            self.buf.reserve(v.len().saturating_mul(4));
            for x in v {
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    /// Write a fixed `float64[N]` array (elements only).
    pub fn write_array_f64(&mut self, v: &[f64]) {
        if !v.is_empty() {
            self.align(8);
            self.buf.reserve(v.len().saturating_mul(8));
            for x in v {
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

/// Bounds-checked CDR reader (CDR_LE or CDR_BE).
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    buf: &'a [u8],
    /// Absolute offset into `buf`.
    pos: usize,
    big_endian: bool,
}

macro_rules! read_prim {
    ($($name:ident: $t:ty),* $(,)?) => {
        $(
            #[doc = concat!("Read a `", stringify!($t), "` (aligned to its size).")]
            pub fn $name(&mut self) -> Result<$t, CdrError> {
                const N: usize = std::mem::size_of::<$t>();
                self.align(N)?;
                let bytes: [u8; N] = self.take_array()?;
                Ok(if self.big_endian {
                    <$t>::from_be_bytes(bytes)
                } else {
                    <$t>::from_le_bytes(bytes)
                })
            }
        )*
    };
}

impl<'a> CdrReader<'a> {
    /// Parse the encapsulation header and position the reader at the payload.
    pub fn new(buf: &'a [u8]) -> Result<Self, CdrError> {
        match buf {
            [a, b, _, _, ..] => {
                let big_endian = match [*a, *b] {
                    [0x00, 0x01] => false,
                    [0x00, 0x00] => true,
                    found => return Err(CdrError::BadEncapsulation { found }),
                };
                Ok(CdrReader { buf, pos: ENCAPSULATION_LEN, big_endian })
            }
            _ => Err(CdrError::Truncated { offset: 0, need: ENCAPSULATION_LEN }),
        }
    }

    /// Absolute offset of the next byte to read (header included).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether the input was big-endian (`00 00` encapsulation).
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// Skip padding so the payload offset is a multiple of `n`.
    pub fn align(&mut self, n: usize) -> Result<(), CdrError> {
        if n > 1 {
            let rel = self.pos.saturating_sub(ENCAPSULATION_LEN);
            let pad = (n - rel % n) % n;
            if pad > 0 {
                self.take(pad)?;
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CdrError> {
        let err = CdrError::Truncated { offset: self.pos, need: n };
        let end = self.pos.checked_add(n).ok_or(err)?;
        let s = self.buf.get(self.pos..end).ok_or(err)?;
        self.pos = end;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], CdrError> {
        let offset = self.pos;
        let s = self.take(N)?;
        <[u8; N]>::try_from(s).map_err(|_| CdrError::Truncated { offset, need: N })
    }

    read_prim!(
        read_u8: u8,
        read_i8: i8,
        read_u16: u16,
        read_i16: i16,
        read_u32: u32,
        read_i32: i32,
        read_u64: u64,
        read_i64: i64,
        read_f32: f32,
        read_f64: f64,
    );

    /// Read a `bool` (any non-zero byte is `true`).
    pub fn read_bool(&mut self) -> Result<bool, CdrError> {
        Ok(self.read_u8()? != 0)
    }

    /// Read a u32 sequence length and check that `len * min_elem_size` bytes
    /// can still follow. Returns the element count.
    pub fn read_len(&mut self, min_elem_size: usize) -> Result<usize, CdrError> {
        self.align(4)?;
        let offset = self.pos;
        let raw = self.read_u32()?;
        let len = usize::try_from(raw).map_err(|_| CdrError::TooLong { offset, len: usize::MAX })?;
        match len.checked_mul(min_elem_size) {
            Some(bytes) if bytes <= self.remaining() => Ok(len),
            _ => Err(CdrError::TooLong { offset, len }),
        }
    }

    /// Read a `string`. A length of 0 (emitted by some non-ROS writers) is
    /// accepted as the empty string.
    pub fn read_string(&mut self) -> Result<String, CdrError> {
        let len = self.read_len(1)?;
        if len == 0 {
            return Ok(String::new());
        }
        let offset = self.pos;
        let bytes = self.take(len)?;
        match bytes.split_last() {
            Some((0, body)) => std::str::from_utf8(body).map(str::to_owned).map_err(|_| CdrError::BadString { offset }),
            _ => Err(CdrError::BadString { offset }),
        }
    }

    /// Read a `uint8[]` / `byte[]` sequence.
    pub fn read_bytes(&mut self) -> Result<Vec<u8>, CdrError> {
        let len = self.read_len(1)?;
        Ok(self.take(len)?.to_vec())
    }

    /// Read a `float32[]` sequence.
    pub fn read_seq_f32(&mut self) -> Result<Vec<f32>, CdrError> {
        let len = self.read_len(4)?;
        self.read_f32_elems(len)
    }

    /// Read a `float64[]` sequence (elements aligned to 8 when non-empty).
    pub fn read_seq_f64(&mut self) -> Result<Vec<f64>, CdrError> {
        let len = self.read_len(8)?;
        self.read_f64_elems(len)
    }

    /// Read a fixed `float64[N]` array.
    pub fn read_array_f64<const N: usize>(&mut self) -> Result<[f64; N], CdrError> {
        let mut out = [0.0f64; N];
        for slot in out.iter_mut() {
            *slot = self.read_f64()?;
        }
        Ok(out)
    }

    /// Read a fixed `float32[N]` array.
    pub fn read_array_f32<const N: usize>(&mut self) -> Result<[f32; N], CdrError> {
        let mut out = [0.0f32; N];
        for slot in out.iter_mut() {
            *slot = self.read_f32()?;
        }
        Ok(out)
    }

    fn read_f32_elems(&mut self, len: usize) -> Result<Vec<f32>, CdrError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.align(4)?;
        let offset = self.pos;
        let nbytes = len.checked_mul(4).ok_or(CdrError::TooLong { offset, len })?;
        let bytes = self.take(nbytes)?;
        let be = self.big_endian;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| {
                let a = <[u8; 4]>::try_from(c).unwrap_or_default();
                if be {
                    f32::from_be_bytes(a)
                } else {
                    f32::from_le_bytes(a)
                }
            })
            .collect())
    }

    fn read_f64_elems(&mut self, len: usize) -> Result<Vec<f64>, CdrError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.align(8)?;
        let offset = self.pos;
        let nbytes = len.checked_mul(8).ok_or(CdrError::TooLong { offset, len })?;
        let bytes = self.take(nbytes)?;
        let be = self.big_endian;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let a = <[u8; 8]>::try_from(c).unwrap_or_default();
                if be {
                    f64::from_be_bytes(a)
                } else {
                    f64::from_le_bytes(a)
                }
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A ROS 2 message type with a CDR representation.
pub trait CdrMessage: Sized {
    /// ROS 2 type name as used by rosbag2 / MCAP, e.g. `sensor_msgs/msg/Imu`.
    const TYPE_NAME: &'static str;
    /// Serialize the fields (no encapsulation header) into `w`.
    fn write_cdr(&self, w: &mut CdrWriter);
    /// Deserialize the fields (no encapsulation header) from `r`.
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError>;
}

/// Encode any [`CdrMessage`] with the CDR_LE encapsulation header.
pub fn encode_message<T: CdrMessage>(msg: &T) -> Vec<u8> {
    let mut w = CdrWriter::new();
    msg.write_cdr(&mut w);
    w.finish()
}

/// Decode any [`CdrMessage`] from bytes starting with the encapsulation header.
pub fn decode_message<T: CdrMessage>(bytes: &[u8]) -> Result<T, CdrError> {
    let mut r = CdrReader::new(bytes)?;
    T::read_cdr(&mut r)
}

macro_rules! impl_encode_decode {
    ($($t:ty),* $(,)?) => {
        $(
            impl $t {
                /// Encode as a complete CDR_LE message (header included).
                pub fn encode(&self) -> Vec<u8> {
                    encode_message(self)
                }

                /// Decode a complete CDR message (header included).
                pub fn decode(bytes: &[u8]) -> Result<Self, CdrError> {
                    decode_message(bytes)
                }
            }
        )*
    };
}

/// `builtin_interfaces/msg/Time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// Split nanoseconds since the epoch into `{sec, nanosec}`; seconds beyond
    /// `i32::MAX` saturate.
    pub fn from_nanos(ns: u64) -> Time {
        Time {
            sec: i32::try_from(ns / 1_000_000_000).unwrap_or(i32::MAX),
            nanosec: u32::try_from(ns % 1_000_000_000).unwrap_or(0),
        }
    }

    /// Total nanoseconds (`sec * 1e9 + nanosec`, may be negative).
    pub fn as_nanos(&self) -> i64 {
        i64::from(self.sec) * 1_000_000_000 + i64::from(self.nanosec)
    }
}

impl CdrMessage for Time {
    const TYPE_NAME: &'static str = "builtin_interfaces/msg/Time";
    fn write_cdr(&self, w: &mut CdrWriter) {
        w.write_i32(self.sec);
        w.write_u32(self.nanosec);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Time { sec: r.read_i32()?, nanosec: r.read_u32()? })
    }
}

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

impl CdrMessage for Header {
    const TYPE_NAME: &'static str = "std_msgs/msg/Header";
    fn write_cdr(&self, w: &mut CdrWriter) {
        self.stamp.write_cdr(w);
        w.write_string(&self.frame_id);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Header { stamp: Time::read_cdr(r)?, frame_id: r.read_string()? })
    }
}

/// `std_msgs/msg/String` (named `StringMsg` to avoid clashing with `String`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StringMsg {
    pub data: String,
}

impl CdrMessage for StringMsg {
    const TYPE_NAME: &'static str = "std_msgs/msg/String";
    fn write_cdr(&self, w: &mut CdrWriter) {
        w.write_string(&self.data);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(StringMsg { data: r.read_string()? })
    }
}

/// `geometry_msgs/msg/Point`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl CdrMessage for Point {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/Point";
    fn write_cdr(&self, w: &mut CdrWriter) {
        w.write_f64(self.x);
        w.write_f64(self.y);
        w.write_f64(self.z);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Point { x: r.read_f64()?, y: r.read_f64()?, z: r.read_f64()? })
    }
}

/// `geometry_msgs/msg/Vector3`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vector3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl CdrMessage for Vector3 {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/Vector3";
    fn write_cdr(&self, w: &mut CdrWriter) {
        w.write_f64(self.x);
        w.write_f64(self.y);
        w.write_f64(self.z);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Vector3 { x: r.read_f64()?, y: r.read_f64()?, z: r.read_f64()? })
    }
}

/// `geometry_msgs/msg/Quaternion` (default is the identity, `w = 1`, as in
/// the .msg definition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quaternion {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub w: f64,
}

impl Default for Quaternion {
    fn default() -> Self {
        Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }
    }
}

impl CdrMessage for Quaternion {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/Quaternion";
    fn write_cdr(&self, w: &mut CdrWriter) {
        w.write_f64(self.x);
        w.write_f64(self.y);
        w.write_f64(self.z);
        w.write_f64(self.w);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Quaternion { x: r.read_f64()?, y: r.read_f64()?, z: r.read_f64()?, w: r.read_f64()? })
    }
}

/// `geometry_msgs/msg/Pose`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pose {
    pub position: Point,
    pub orientation: Quaternion,
}

impl CdrMessage for Pose {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/Pose";
    fn write_cdr(&self, w: &mut CdrWriter) {
        self.position.write_cdr(w);
        self.orientation.write_cdr(w);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Pose { position: Point::read_cdr(r)?, orientation: Quaternion::read_cdr(r)? })
    }
}

/// `geometry_msgs/msg/PoseStamped`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoseStamped {
    pub header: Header,
    pub pose: Pose,
}

impl CdrMessage for PoseStamped {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/PoseStamped";
    fn write_cdr(&self, w: &mut CdrWriter) {
        self.header.write_cdr(w);
        self.pose.write_cdr(w);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(PoseStamped { header: Header::read_cdr(r)?, pose: Pose::read_cdr(r)? })
    }
}

/// `sensor_msgs/msg/Imu`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imu {
    pub header: Header,
    pub orientation: Quaternion,
    pub orientation_covariance: [f64; 9],
    pub angular_velocity: Vector3,
    pub angular_velocity_covariance: [f64; 9],
    pub linear_acceleration: Vector3,
    pub linear_acceleration_covariance: [f64; 9],
}

impl CdrMessage for Imu {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Imu";
    fn write_cdr(&self, w: &mut CdrWriter) {
        self.header.write_cdr(w);
        self.orientation.write_cdr(w);
        w.write_array_f64(&self.orientation_covariance);
        self.angular_velocity.write_cdr(w);
        w.write_array_f64(&self.angular_velocity_covariance);
        self.linear_acceleration.write_cdr(w);
        w.write_array_f64(&self.linear_acceleration_covariance);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Imu {
            header: Header::read_cdr(r)?,
            orientation: Quaternion::read_cdr(r)?,
            orientation_covariance: r.read_array_f64()?,
            angular_velocity: Vector3::read_cdr(r)?,
            angular_velocity_covariance: r.read_array_f64()?,
            linear_acceleration: Vector3::read_cdr(r)?,
            linear_acceleration_covariance: r.read_array_f64()?,
        })
    }
}

/// `sensor_msgs/msg/LaserScan`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaserScan {
    pub header: Header,
    pub angle_min: f32,
    pub angle_max: f32,
    pub angle_increment: f32,
    pub time_increment: f32,
    pub scan_time: f32,
    pub range_min: f32,
    pub range_max: f32,
    pub ranges: Vec<f32>,
    pub intensities: Vec<f32>,
}

impl CdrMessage for LaserScan {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/LaserScan";
    fn write_cdr(&self, w: &mut CdrWriter) {
        self.header.write_cdr(w);
        w.write_f32(self.angle_min);
        w.write_f32(self.angle_max);
        w.write_f32(self.angle_increment);
        w.write_f32(self.time_increment);
        w.write_f32(self.scan_time);
        w.write_f32(self.range_min);
        w.write_f32(self.range_max);
        w.write_seq_f32(&self.ranges);
        w.write_seq_f32(&self.intensities);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(LaserScan {
            header: Header::read_cdr(r)?,
            angle_min: r.read_f32()?,
            angle_max: r.read_f32()?,
            angle_increment: r.read_f32()?,
            time_increment: r.read_f32()?,
            scan_time: r.read_f32()?,
            range_min: r.read_f32()?,
            range_max: r.read_f32()?,
            ranges: r.read_seq_f32()?,
            intensities: r.read_seq_f32()?,
        })
    }
}

/// `sensor_msgs/msg/Image`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub encoding: String,
    pub is_bigendian: u8,
    pub step: u32,
    pub data: Vec<u8>,
}

impl CdrMessage for Image {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Image";
    fn write_cdr(&self, w: &mut CdrWriter) {
        self.header.write_cdr(w);
        w.write_u32(self.height);
        w.write_u32(self.width);
        w.write_string(&self.encoding);
        w.write_u8(self.is_bigendian);
        w.write_u32(self.step);
        w.write_bytes(&self.data);
    }
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Image {
            header: Header::read_cdr(r)?,
            height: r.read_u32()?,
            width: r.read_u32()?,
            encoding: r.read_string()?,
            is_bigendian: r.read_u8()?,
            step: r.read_u32()?,
            data: r.read_bytes()?,
        })
    }
}

impl_encode_decode!(Time, Header, StringMsg, Point, Vector3, Quaternion, Pose, PoseStamped, Imu, LaserScan, Image,);

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(sec: i32, nanosec: u32, frame_id: &str) -> Header {
        Header { stamp: Time { sec, nanosec }, frame_id: frame_id.to_string() }
    }

    fn sample_imu(frame_id: &str) -> Imu {
        let mut cov = [0.0; 9];
        for (i, c) in cov.iter_mut().enumerate() {
            *c = i as f64 * 0.5 - 1.0;
        }
        Imu {
            header: hdr(1, 2, frame_id),
            orientation: Quaternion { x: 0.1, y: -0.2, z: 0.3, w: 0.9 },
            orientation_covariance: cov,
            angular_velocity: Vector3 { x: 1.5, y: -2.5, z: 3.25 },
            angular_velocity_covariance: [1.0; 9],
            linear_acceleration: Vector3 { x: 0.0, y: 0.125, z: 9.80665 },
            linear_acceleration_covariance: [-1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0],
        }
    }

    fn sample_scan(n: usize) -> LaserScan {
        LaserScan {
            header: hdr(-5, 999_999_999, "laser"),
            angle_min: -1.5,
            angle_max: 1.5,
            angle_increment: 0.01,
            time_increment: 0.0001,
            scan_time: 0.1,
            range_min: 0.05,
            range_max: 30.0,
            ranges: (0..n).map(|i| i as f32 * 0.25).collect(),
            intensities: (0..n / 2).map(|i| 100.0 + i as f32).collect(),
        }
    }

    fn sample_pose() -> PoseStamped {
        PoseStamped {
            header: hdr(1_700_000_000, 123, "map"),
            pose: Pose { position: Point { x: 1.0, y: -2.0, z: 3.5 }, orientation: Quaternion::default() },
        }
    }

    fn sample_image() -> Image {
        Image {
            header: hdr(7, 8, "camera_optical_frame"),
            height: 2,
            width: 3,
            encoding: "rgb8".to_string(),
            is_bigendian: 0,
            step: 9,
            data: (0..18u8).collect(),
        }
    }

    /// Every sample encoding used by the generic tests.
    fn all_encodings() -> Vec<Vec<u8>> {
        vec![
            Time { sec: -1, nanosec: 5 }.encode(),
            hdr(1, 2, "a").encode(),
            hdr(0, 0, "").encode(),
            StringMsg { data: "hello".into() }.encode(),
            StringMsg { data: String::new() }.encode(),
            Point { x: 1.0, y: 2.0, z: 3.0 }.encode(),
            Vector3 { x: -1.0, y: 0.5, z: 1e300 }.encode(),
            Quaternion::default().encode(),
            sample_pose().pose.encode(),
            sample_pose().encode(),
            sample_imu("").encode(),
            sample_imu("ab").encode(),
            sample_imu("robot7/imu_link").encode(),
            sample_scan(0).encode(),
            sample_scan(5).encode(),
            sample_image().encode(),
            Image::default().encode(),
        ]
    }

    fn decode_all(bytes: &[u8]) -> Vec<bool> {
        vec![
            Time::decode(bytes).is_ok(),
            Header::decode(bytes).is_ok(),
            StringMsg::decode(bytes).is_ok(),
            Point::decode(bytes).is_ok(),
            Vector3::decode(bytes).is_ok(),
            Quaternion::decode(bytes).is_ok(),
            Pose::decode(bytes).is_ok(),
            PoseStamped::decode(bytes).is_ok(),
            Imu::decode(bytes).is_ok(),
            LaserScan::decode(bytes).is_ok(),
            Image::decode(bytes).is_ok(),
        ]
    }

    #[test]
    fn string_hello_exact_bytes() {
        let b = StringMsg { data: "hello".into() }.encode();
        assert_eq!(b, [0x00, 0x01, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00]);
        assert_eq!(StringMsg::decode(&b).unwrap().data, "hello");
    }

    #[test]
    fn empty_string_exact_bytes() {
        let b = StringMsg::default().encode();
        assert_eq!(b, [0, 1, 0, 0, 1, 0, 0, 0, 0]);
        // length 0 (no NUL) is tolerated as the empty string
        assert_eq!(StringMsg::decode(&[0, 1, 0, 0, 0, 0, 0, 0]).unwrap(), StringMsg::default());
    }

    #[test]
    fn header_exact_bytes() {
        let b = hdr(1, 2, "a").encode();
        assert_eq!(
            b,
            [
                0, 1, 0, 0, // encapsulation
                1, 0, 0, 0, // sec
                2, 0, 0, 0, // nanosec
                2, 0, 0, 0, // frame_id length incl. NUL
                b'a', 0,
            ]
        );
        assert_eq!(Header::decode(&b).unwrap(), hdr(1, 2, "a"));
    }

    #[test]
    fn time_negative_exact_bytes() {
        let b = Time { sec: -2, nanosec: 300_000_000 }.encode();
        assert_eq!(b, [0, 1, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x00, 0xa3, 0xe1, 0x11]);
    }

    #[test]
    fn imu_f64_alignment_after_short_string() {
        // payload: sec(0..4) nanosec(4..8) len(8..12) "ab\0"(12..15) pad(15) x(16..24)
        let imu = sample_imu("ab");
        let b = imu.encode();
        let mut expected = vec![0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, b'a', b'b', 0, 0];
        expected.extend_from_slice(&0.1f64.to_le_bytes());
        assert_eq!(&b[..28], &expected[..]);
        // 16 header-ish bytes + quaternion(32) + 3 * (9*8) + 2 * vector3(24)
        assert_eq!(b.len(), 4 + 16 + 32 + 3 * 72 + 2 * 24);
        assert_eq!(Imu::decode(&b).unwrap(), imu);
    }

    #[test]
    fn imu_alignment_is_relative_to_payload_not_buffer() {
        // "abcd\0" ends at payload offset 17 -> x at payload 24 (buffer 28).
        // Buffer-relative alignment would wrongly put it at buffer 24.
        let imu = sample_imu("abcd");
        let b = imu.encode();
        assert_eq!(&b[4 + 8..4 + 12], &[5, 0, 0, 0]);
        assert_eq!(&b[4 + 12..4 + 17], b"abcd\0");
        assert_eq!(&b[4 + 17..4 + 24], &[0u8; 7]);
        assert_eq!(&b[4 + 24..4 + 32], &0.1f64.to_le_bytes());
        assert_eq!(Imu::decode(&b).unwrap(), imu);
    }

    #[test]
    fn pose_stamped_exact_bytes() {
        let msg = PoseStamped {
            header: hdr(3, 4, "m"),
            pose: Pose { position: Point { x: 1.0, y: 2.0, z: 3.0 }, orientation: Quaternion::default() },
        };
        let b = msg.encode();
        let mut expected = vec![0, 1, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, b'm', 0];
        expected.extend_from_slice(&[0; 2]); // pad payload 14 -> 16
        for v in [1.0f64, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(b, expected);
    }

    #[test]
    fn laser_scan_exact_bytes() {
        let msg = LaserScan {
            header: hdr(1, 2, "l"),
            angle_min: -1.0,
            angle_max: 1.0,
            angle_increment: 0.5,
            time_increment: 0.0,
            scan_time: 0.1,
            range_min: 0.1,
            range_max: 10.0,
            ranges: vec![1.0, 2.0],
            intensities: vec![],
        };
        let b = msg.encode();
        // payload: 0..8 stamp, 8..12 len=2, 12..14 "l\0", pad to 16, 7 f32 (16..44),
        // 44..48 count 2, 48..56 ranges, 56..60 count 0
        let mut expected = vec![0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, b'l', 0, 0, 0];
        for v in [-1.0f32, 1.0, 0.5, 0.0, 0.1, 0.1, 10.0] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        expected.extend_from_slice(&[2, 0, 0, 0]);
        expected.extend_from_slice(&1.0f32.to_le_bytes());
        expected.extend_from_slice(&2.0f32.to_le_bytes());
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(b, expected);
        assert_eq!(LaserScan::decode(&b).unwrap(), msg);
    }

    #[test]
    fn image_exact_bytes() {
        let msg = Image {
            header: hdr(0, 0, ""),
            height: 1,
            width: 2,
            encoding: "mono8".into(),
            is_bigendian: 0,
            step: 2,
            data: vec![7, 8],
        };
        let b = msg.encode();
        let expected: Vec<u8> = vec![
            0, 1, 0, 0, // encapsulation
            0, 0, 0, 0, 0, 0, 0, 0, // stamp
            1, 0, 0, 0, 0, // frame_id "" = len 1 + NUL
            0, 0, 0, // pad to 16
            1, 0, 0, 0, // height
            2, 0, 0, 0, // width
            6, 0, 0, 0, b'm', b'o', b'n', b'o', b'8', 0, // encoding
            0, // is_bigendian
            0, // pad to 36
            2, 0, 0, 0, // step
            2, 0, 0, 0, 7, 8, // data
        ];
        assert_eq!(b, expected);
        assert_eq!(Image::decode(&b).unwrap(), msg);
    }

    #[test]
    fn seq_f64_alignment() {
        let mut w = CdrWriter::new();
        w.write_u8(9);
        w.write_seq_f64(&[1.5]);
        w.write_seq_f64(&[]);
        w.write_u8(3);
        let b = w.finish();
        // u8(0) pad(1..4) count(4..8) elem(8..16) count(16..20) u8(20)
        let mut expected = vec![0, 1, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0, 0, 0, 0, 3]);
        assert_eq!(b, expected);
        let mut r = CdrReader::new(&b).unwrap();
        assert_eq!(r.read_u8().unwrap(), 9);
        assert_eq!(r.read_seq_f64().unwrap(), vec![1.5]);
        assert_eq!(r.read_seq_f64().unwrap(), Vec::<f64>::new());
        assert_eq!(r.read_u8().unwrap(), 3);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn primitives_round_trip() {
        let mut w = CdrWriter::default();
        w.write_bool(true);
        w.write_i16(-3);
        w.write_u64(u64::MAX - 1);
        w.write_i8(-7);
        w.write_i64(i64::MIN);
        w.write_u16(65000);
        w.write_f32(1.25);
        w.write_array_f32(&[1.0, 2.0]);
        w.write_bytes(&[1, 2, 3]);
        assert_eq!(w.position() + 4, w.as_bytes().len());
        let b = w.finish();
        let mut r = CdrReader::new(&b).unwrap();
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_i16().unwrap(), -3);
        assert_eq!(r.position(), 4 + 4);
        assert_eq!(r.read_u64().unwrap(), u64::MAX - 1);
        assert_eq!(r.read_i8().unwrap(), -7);
        assert_eq!(r.read_i64().unwrap(), i64::MIN);
        assert_eq!(r.read_u16().unwrap(), 65000);
        assert_eq!(r.read_f32().unwrap(), 1.25);
        assert_eq!(r.read_array_f32::<2>().unwrap(), [1.0, 2.0]);
        assert_eq!(r.read_bytes().unwrap(), vec![1, 2, 3]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn round_trip_every_type() {
        let t = Time { sec: i32::MIN, nanosec: 999_999_999 };
        assert_eq!(Time::decode(&t.encode()).unwrap(), t);
        let h = hdr(5, 6, "robot1/base_link");
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        let s = StringMsg { data: "grüße, ROS 2 ✓".into() };
        assert_eq!(StringMsg::decode(&s.encode()).unwrap(), s);
        let p = Point { x: f64::MIN_POSITIVE, y: -0.0, z: f64::MAX };
        assert_eq!(Point::decode(&p.encode()).unwrap(), p);
        let v = Vector3 { x: 1.0, y: f64::INFINITY, z: -3.0 };
        assert_eq!(Vector3::decode(&v.encode()).unwrap(), v);
        let q = Quaternion { x: 0.5, y: 0.5, z: 0.5, w: 0.5 };
        assert_eq!(Quaternion::decode(&q.encode()).unwrap(), q);
        let pose = Pose { position: p, orientation: q };
        assert_eq!(Pose::decode(&pose.encode()).unwrap(), pose);
        let ps = sample_pose();
        assert_eq!(PoseStamped::decode(&ps.encode()).unwrap(), ps);
        for frame in ["", "a", "ab", "abc", "abcd", "abcdefg", "robot12/imu_link"] {
            let imu = sample_imu(frame);
            assert_eq!(Imu::decode(&imu.encode()).unwrap(), imu);
            let mut img = sample_image();
            img.header.frame_id = frame.into();
            assert_eq!(Image::decode(&img.encode()).unwrap(), img);
        }
        for n in [0, 1, 2, 3, 7, 360, 1081] {
            let scan = sample_scan(n);
            assert_eq!(LaserScan::decode(&scan.encode()).unwrap(), scan);
        }
        assert_eq!(Image::decode(&Image::default().encode()).unwrap(), Image::default());
        assert_eq!(Imu::decode(&Imu::default().encode()).unwrap(), Imu::default());
        assert_eq!(Imu::default().orientation.w, 1.0);
    }

    #[test]
    fn generic_helpers_and_type_names() {
        let s = StringMsg { data: "x".into() };
        let b = encode_message(&s);
        assert_eq!(b, s.encode());
        assert_eq!(decode_message::<StringMsg>(&b).unwrap(), s);
        assert_eq!(Imu::TYPE_NAME, "sensor_msgs/msg/Imu");
        assert_eq!(LaserScan::TYPE_NAME, "sensor_msgs/msg/LaserScan");
        assert_eq!(Image::TYPE_NAME, "sensor_msgs/msg/Image");
        assert_eq!(PoseStamped::TYPE_NAME, "geometry_msgs/msg/PoseStamped");
        assert_eq!(StringMsg::TYPE_NAME, "std_msgs/msg/String");
    }

    #[test]
    fn time_nanos_helpers() {
        let t = Time::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(t, Time { sec: 1_700_000_000, nanosec: 123_456_789 });
        assert_eq!(t.as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(Time::from_nanos(u64::MAX).sec, i32::MAX);
        assert_eq!(Time { sec: -2, nanosec: 300_000_000 }.as_nanos(), -1_700_000_000);
    }

    #[test]
    fn trailing_padding_is_ignored() {
        let mut b = StringMsg { data: "hello".into() }.encode();
        b.extend_from_slice(&[0, 0]);
        assert_eq!(StringMsg::decode(&b).unwrap().data, "hello");
    }

    #[test]
    fn big_endian_input_is_read() {
        let b = [0, 0, 0, 0, 0, 0, 0, 6, b'h', b'e', b'l', b'l', b'o', 0];
        let mut r = CdrReader::new(&b).unwrap();
        assert!(r.is_big_endian());
        assert_eq!(StringMsg::decode(&b).unwrap().data, "hello");
        let mut be = vec![0, 0, 0, 0];
        be.extend_from_slice(&(-2i32).to_be_bytes());
        be.extend_from_slice(&7u32.to_be_bytes());
        assert_eq!(Time::decode(&be).unwrap(), Time { sec: -2, nanosec: 7 });
        assert_eq!(r.read_u32().unwrap(), 6);
    }

    #[test]
    fn error_variants() {
        assert_eq!(StringMsg::decode(&[0, 1]), Err(CdrError::Truncated { offset: 0, need: 4 }));
        assert_eq!(StringMsg::decode(&[0, 2, 0, 0, 1, 0, 0, 0, 0]), Err(CdrError::BadEncapsulation { found: [0, 2] }));
        assert_eq!(Time::decode(&[0, 1, 0, 0, 1, 0, 0, 0, 2, 0]), Err(CdrError::Truncated { offset: 8, need: 4 }));
        // huge declared length: rejected before allocating
        assert_eq!(
            StringMsg::decode(&[0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, b'a', 0]),
            Err(CdrError::TooLong { offset: 4, len: u32::MAX as usize })
        );
        let mut scan = vec![0, 1, 0, 0];
        scan.extend_from_slice(&[0; 8]); // stamp
        scan.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // "" + pad
        scan.extend_from_slice(&[0; 28]); // 7 f32
        scan.extend_from_slice(&0x4000_0000u32.to_le_bytes()); // ranges count
        scan.extend_from_slice(&[0; 16]);
        assert_eq!(LaserScan::decode(&scan), Err(CdrError::TooLong { offset: 48, len: 0x4000_0000 }));
        // missing NUL terminator
        assert_eq!(StringMsg::decode(&[0, 1, 0, 0, 2, 0, 0, 0, b'a', b'b']), Err(CdrError::BadString { offset: 8 }));
        // invalid UTF-8
        assert_eq!(StringMsg::decode(&[0, 1, 0, 0, 3, 0, 0, 0, 0xff, 0xfe, 0]), Err(CdrError::BadString { offset: 8 }));
        // errors are displayable
        for e in [
            CdrError::Truncated { offset: 1, need: 2 },
            CdrError::BadEncapsulation { found: [1, 2] },
            CdrError::BadString { offset: 3 },
            CdrError::TooLong { offset: 4, len: 5 },
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn every_truncated_prefix_is_an_error() {
        fn check<T: CdrMessage + std::fmt::Debug>(full: &[u8]) {
            assert!(decode_message::<T>(full).is_ok());
            for n in 0..full.len() {
                let prefix = &full[..n];
                assert!(
                    decode_message::<T>(prefix).is_err(),
                    "{} decoded from {n}-byte prefix of {} bytes",
                    T::TYPE_NAME,
                    full.len()
                );
            }
        }
        check::<Time>(&Time { sec: 1, nanosec: 2 }.encode());
        check::<Header>(&hdr(1, 2, "frame").encode());
        check::<StringMsg>(&StringMsg { data: "hello".into() }.encode());
        check::<StringMsg>(&StringMsg::default().encode());
        check::<Point>(&Point::default().encode());
        check::<Vector3>(&Vector3::default().encode());
        check::<Quaternion>(&Quaternion::default().encode());
        check::<Pose>(&Pose::default().encode());
        check::<PoseStamped>(&sample_pose().encode());
        for frame in ["", "ab", "abcd", "robot3/imu_link"] {
            check::<Imu>(&sample_imu(frame).encode());
        }
        for n in [0, 1, 4, 33] {
            check::<LaserScan>(&sample_scan(n).encode());
        }
        check::<Image>(&sample_image().encode());
        check::<Image>(&Image::default().encode());
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for i in 0..4000 {
            let len = (rng.next() % 160) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // make most inputs get past the encapsulation check
            if i % 4 != 0 && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&ENCAPSULATION_CDR_LE);
                if i % 8 == 1 {
                    bytes[1] = 0; // big endian
                }
            }
            // small length fields make deeper parsing more likely
            if i % 3 == 0 && bytes.len() >= 16 {
                bytes[12..16].copy_from_slice(&((rng.next() % 12) as u32).to_le_bytes());
            }
            let _ = decode_all(&bytes);
        }
    }

    #[test]
    fn mutated_valid_encodings_never_panic() {
        let mut rng = XorShift(0x1234_5678_9ABC_DEF1);
        let samples = all_encodings();
        for _ in 0..4000 {
            let base = &samples[(rng.next() % samples.len() as u64) as usize];
            let mut bytes = base.clone();
            let flips = 1 + rng.next() % 4;
            for _ in 0..flips {
                if bytes.is_empty() {
                    break;
                }
                let at = (rng.next() % bytes.len() as u64) as usize;
                bytes[at] = rng.next() as u8;
            }
            let cut = (rng.next() % (bytes.len() as u64 + 1)) as usize;
            let _ = decode_all(&bytes);
            let _ = decode_all(&bytes[..cut]);
        }
    }
}
