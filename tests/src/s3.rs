//! S3-compatible test servers on loopback (moto, SeaweedFS), started and stopped by tests.
