//! Times on the command line (`--start`, `--end`): nanoseconds since the Unix epoch
//! (`1700000000000000000`), seconds with an `s` suffix (`1700000000.25s`), or RFC 3339 in UTC or
//! with an offset (`2023-11-14T22:13:20.5Z`, `2023-11-14T23:13:20+01:00`). Durations
//! (`--max-age`): a decimal number with a unit, `ns`, `us`, `ms` or `s` (`100ms`, `0.5s`).

/// Parses a time; the error says what is accepted.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let err = || {
        format!(
            "`{s}` is not a time: use ns since the epoch (1700000000000000000), seconds with `s` \
             (1700000000.25s) or RFC 3339 (2023-11-14T22:13:20Z)"
        )
    };
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    if let Some(secs) = s.strip_suffix('s') {
        return seconds_to_ns(secs).ok_or_else(err);
    }
    rfc3339(s).ok_or_else(err)
}

/// `"123.456"` seconds -> ns, exactly (no float rounding).
fn seconds_to_ns(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let frac_ns: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).filter(|x| x.bytes().all(|c| c.is_ascii_digit()))?.parse::<u32>().ok();
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ns = 0u64;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        frac_ns = format!("{:0<9}", &r[..n]).parse().ok()?;
        rest = &r[n..];
    }
    let offset_s: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se) - offset_s;
    u64::try_from(secs).ok()?.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// Parses a duration with a unit (`250ns`, `20us`, `100ms`, `0.5s`) into nanoseconds, exactly.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let err = || format!("`{s}` is not a duration: use a number with a unit ns, us, ms or s (100ms, 0.5s)");
    let (num, digits) = if let Some(n) = s.strip_suffix("ns") {
        (n, 0)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 9)
    } else {
        return Err(err());
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    if frac.len() > digits {
        return Err(format!("`{s}` is finer than a nanosecond"));
    }
    let scale = 10u64.pow(digits as u32);
    let whole: u64 = int.parse().map_err(|_| err())?;
    let frac_ns: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<digits$}").parse().map_err(|_| err())? };
    whole.checked_mul(scale).and_then(|w| w.checked_add(frac_ns)).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_time("1700000000000000000"), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("1700000000.25s"), Ok(1_700_000_000_250_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.000000001Z"), Ok(1_700_000_000_000_000_001));
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        for bad in
            ["", "x", "1.5", "-1s", "2023-13-01T00:00:00Z", "2023-11-14T22:13:20", "1e9s", "1969-12-31T23:59:59Z"]
        {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("0.5s"), Ok(500_000_000));
        assert_eq!(parse_duration("20us"), Ok(20_000));
        assert_eq!(parse_duration("1.5us"), Ok(1_500));
        assert_eq!(parse_duration("7ns"), Ok(7));
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration("0ms"), Ok(0));
        for bad in ["", "100", "ms", "1.5ns", "-1s", "1e3ms", "10 m", "1.0000000001s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
