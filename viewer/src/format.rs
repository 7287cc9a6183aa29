//! Human-readable numbers for the UI: rates, byte sizes, counts.

/// `1234.5` -> `"1.2 k/s"`-style message rate in Hz.
pub fn rate_hz(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} kHz", v / 1000.0)
    } else {
        format!("{v:.1} Hz")
    }
}

/// Bytes with a binary-ish decimal unit (B, kB, MB, GB).
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Bandwidth: bytes per second.
pub fn bandwidth(v: f64) -> String {
    format!("{}/s", bytes(v))
}

/// An age in whole seconds: `"<1 s"`, `"12 s"`, `"3 min"`, `"2 h"`.
pub fn age(seconds: u64) -> String {
    match seconds {
        0 => "<1 s".into(),
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(rate_hz(12.345), "12.3 Hz");
        assert_eq!(rate_hz(25_000.0), "25.0 kHz");
        assert_eq!(bytes(999.0), "999 B");
        assert_eq!(bytes(1_500_000.0), "1.5 MB");
        assert_eq!(bandwidth(2_000.0), "2.0 kB/s");
        assert_eq!(age(0), "<1 s");
        assert_eq!(age(59), "59 s");
        assert_eq!(age(150), "2 min");
        assert_eq!(age(7200), "2 h");
    }
}
