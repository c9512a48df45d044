//! The AGE column: kubectl's `duration.HumanDuration`, so ages read the same
//! as in any Kubernetes cluster (about two significant figures).

use chrono::{DateTime, Duration, Utc};

/// Age of an object created at `created` (RFC 3339), `<unknown>` when unset or unparsable.
pub fn age(created: Option<&str>, now: DateTime<Utc>) -> String {
    created
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map_or_else(
            || "<unknown>".to_string(),
            |created| human_duration(now.signed_duration_since(created)),
        )
}

/// kubectl's thresholds: seconds below 2m, m+s below 10m, minutes below 3h,
/// h+m below 8h, hours below 2d, d+h below 8d, days below 2y, y+d below 8y.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    if seconds < -1 {
        // More than clock skew: the timestamp is in the future.
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

/// `2m10s`, or `2m` when the smaller unit is zero.
fn with_remainder(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(seconds: i64) -> String {
        human_duration(Duration::seconds(seconds))
    }

    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;

    #[test]
    fn seconds_up_to_two_minutes() {
        assert_eq!(human(-5), "<invalid>");
        assert_eq!(human(-1), "0s");
        assert_eq!(human(0), "0s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(119), "119s");
    }

    #[test]
    fn minutes_and_seconds_up_to_ten_minutes() {
        assert_eq!(human(2 * MINUTE), "2m");
        assert_eq!(human(2 * MINUTE + 10), "2m10s");
        assert_eq!(human(10 * MINUTE - 1), "9m59s");
    }

    #[test]
    fn minutes_up_to_three_hours() {
        assert_eq!(human(10 * MINUTE), "10m");
        assert_eq!(human(10 * MINUTE + 59), "10m");
        assert_eq!(human(3 * HOUR - 1), "179m");
    }

    #[test]
    fn hours_and_minutes_up_to_eight_hours() {
        assert_eq!(human(3 * HOUR), "3h");
        assert_eq!(human(3 * HOUR + 20 * MINUTE), "3h20m");
        assert_eq!(human(8 * HOUR - 1), "7h59m");
    }

    #[test]
    fn hours_up_to_two_days() {
        assert_eq!(human(8 * HOUR), "8h");
        assert_eq!(human(2 * DAY - 1), "47h");
    }

    #[test]
    fn days_and_hours_up_to_eight_days() {
        assert_eq!(human(2 * DAY), "2d");
        assert_eq!(human(2 * DAY + 3 * HOUR), "2d3h");
        assert_eq!(human(8 * DAY - 1), "7d23h");
    }

    #[test]
    fn days_up_to_two_years() {
        assert_eq!(human(8 * DAY), "8d");
        assert_eq!(human(400 * DAY), "400d");
        assert_eq!(human(2 * YEAR - 1), "729d");
    }

    #[test]
    fn years_and_days_up_to_eight_years() {
        assert_eq!(human(2 * YEAR), "2y");
        assert_eq!(human(3 * YEAR + 120 * DAY), "3y120d");
        assert_eq!(human(8 * YEAR - 1), "7y364d");
    }

    #[test]
    fn years_beyond() {
        assert_eq!(human(8 * YEAR), "8y");
        assert_eq!(human(20 * YEAR + 100 * DAY), "20y");
    }

    #[test]
    fn age_from_timestamp() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap();
        assert_eq!(age(Some("2024-05-01T11:57:50Z"), now), "2m10s");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("yesterday"), now), "<unknown>");
    }
}
