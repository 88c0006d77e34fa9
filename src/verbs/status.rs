//! `status`: which extensions are merged into which hierarchy (systemd's JSON shape).

pub use crate::merge::status::{rows, StatusRow};
use crate::settings::ClassSettings;
use crate::verbs::{print_json, JsonMode, EXIT_SUCCESS};
use anyhow::Result;

/// Format µs since the epoch as systemd's `format_timestamp()` does in UTC:
/// `Www YYYY-MM-DD HH:MM:SS UTC` (no time zone database in the initrd).
pub fn format_usec(usec: u64) -> String {
    let secs = (usec / 1_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{weekday} {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The table systemd prints: one row per hierarchy, one line per extension (an unmerged
/// hierarchy shows `-`), names escaped so that no value can split a row.
pub fn render(rows: &[StatusRow], legend: bool) -> String {
    let mut lines: Vec<[String; 3]> = Vec::new();
    if legend {
        lines.push(["HIERARCHY", "EXTENSIONS", "SINCE"].map(String::from));
    }
    for r in rows {
        let since = r.since.map(format_usec).unwrap_or_default();
        let hierarchy = crate::log::escape(r.hierarchy.as_bytes());
        if r.extensions.is_empty() {
            lines.push([hierarchy, "-".into(), since]);
            continue;
        }
        for (i, e) in r.extensions.iter().enumerate() {
            let first = i == 0;
            lines.push([
                if first {
                    hierarchy.clone()
                } else {
                    String::new()
                },
                crate::log::escape(e.as_bytes()),
                if first { since.clone() } else { String::new() },
            ]);
        }
    }
    let w0 = lines
        .iter()
        .map(|l| l[0].chars().count())
        .max()
        .unwrap_or(0);
    let w1 = lines
        .iter()
        .map(|l| l[1].chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for l in lines {
        let line = format!("{:<w0$} {:<w1$} {}", l[0], l[1], l[2]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Run `status` for the selected classes.
pub fn run(classes: &[ClassSettings], json: JsonMode, legend: bool) -> Result<i32> {
    let mut all = Vec::new();
    for s in classes {
        all.extend(rows(s)?);
    }
    if json != JsonMode::Off {
        print_json(json, &all)?;
        return Ok(EXIT_SUCCESS);
    }
    crate::verbs::print_text(&render(&all, legend))?;
    Ok(EXIT_SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_usec_is_utc_civil_time() {
        assert_eq!(format_usec(0), "Thu 1970-01-01 00:00:00 UTC");
        assert_eq!(
            format_usec(1_795_305_600_000_000),
            "Sun 2026-11-22 00:00:00 UTC"
        );
        assert_eq!(
            format_usec(951_782_400_000_000 + 3_723_000_000),
            "Tue 2000-02-29 01:02:03 UTC"
        );
    }
}
