//! Times in queries: Unix milliseconds, `YYYY-MM-DD` (UTC midnight) or RFC 3339 UTC
//! (`YYYY-MM-DDTHH:MM:SSZ`).

/// Unix milliseconds of a query time.
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || format!("cannot read time {s:?} (use Unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)");
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(day)), None)
            if (1..=12).contains(&m) && (1..=31).contains(&day) =>
        {
            (y, m, day)
        }
        _ => return Err(bad()),
    };
    let secs = match time {
        None => 0,
        Some(t) => {
            let t = t.split('.').next().unwrap_or(t);
            let parts: Vec<i64> = t
                .split(':')
                .map(|p| p.parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            match parts.as_slice() {
                [h, mi] => h * 3600 + mi * 60,
                [h, mi, se] => h * 3600 + mi * 60 + se,
                _ => return Err(bad()),
            }
        }
    };
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * mm + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + secs) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time_ms("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time_ms("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time_ms("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time_ms("yesterday").is_err());
    }
}
