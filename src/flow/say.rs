//! Spoken values: a number, an amount of money, a date or a string of digits turned into the
//! sequence of recorded words that says it, by each language's own grammar. Words are prompt
//! names under `say/` in the language's prompt folder (`prompts/en/say/20.wav`).

/// What a value is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SayAs {
    /// One word per key: "1 2 3 4".
    Digits,
    /// A whole or decimal number: "one thousand two hundred", "twelve point five".
    Number,
    /// Money with two decimals in the language's currency words.
    Amount,
    /// A calendar date given as YYYY-MM-DD.
    Date,
    /// A time of day given as HH:MM (24-hour; seconds, if any, are not said).
    Time,
}

impl SayAs {
    pub const ALL: [(&'static str, SayAs); 5] = [
        ("digits", SayAs::Digits),
        ("number", SayAs::Number),
        ("amount", SayAs::Amount),
        ("date", SayAs::Date),
        ("time", SayAs::Time),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    English,
    Chinese,
}

impl Grammar {
    pub fn for_language(lang: &str) -> Grammar {
        if lang.starts_with("zh") || lang.starts_with("cmn") {
            Grammar::Chinese
        } else {
            Grammar::English
        }
    }

    /// Every word this grammar may use, so `check` can ask for exactly these files.
    pub fn words(self) -> Vec<String> {
        let mut w: Vec<String> = Vec::new();
        match self {
            Grammar::English => {
                w.extend((0..20).map(|n| n.to_string()));
                w.extend((2..10).map(|n| (n * 10).to_string()));
                for s in [
                    "hundred", "thousand", "million", "billion", "point", "minus", "and", "yuan",
                    "cents", "cent", "star", "pound", "am", "pm", "o_clock", "oh",
                ] {
                    w.push(s.into());
                }
                w.extend((1..=12).map(|m| format!("month_{m}")));
                w.extend((1..=31).map(|d| format!("day_{d}")));
            }
            Grammar::Chinese => {
                w.extend((0..=10).map(|n| n.to_string()));
                for s in [
                    "liang", "yao", "hundred", "thousand", "wan", "yi", "point", "minus", "yuan",
                    "jiao", "fen", "zheng", "year", "month", "day", "star", "pound",
                ] {
                    w.push(s.into());
                }
            }
        }
        w
    }
}

/// The words that say `value`; empty when the value cannot be read that way (the caller then
/// hears nothing rather than nonsense, and the flow goes on).
pub fn words(grammar: Grammar, how: SayAs, value: &str) -> Vec<String> {
    let value = value.trim();
    let mut out = Vec::new();
    match how {
        SayAs::Digits => digits(grammar, value, &mut out),
        SayAs::Number => {
            let Some(n) = Decimal::parse(value) else {
                return out;
            };
            if n.negative {
                out.push("minus".into());
            }
            integer(grammar, n.whole, &mut out);
            if !n.fraction.is_empty() {
                out.push("point".into());
                digits_plain(&n.fraction, &mut out);
            }
        }
        SayAs::Amount => amount(grammar, value, &mut out),
        SayAs::Date => date(grammar, value, &mut out),
        SayAs::Time => time(grammar, value, &mut out),
    }
    out
}

/// "14:30": "2 30 pm" in English; 十四点三十分 ("10 4 point 3 10 fen") in Chinese, where
/// the hour's 2 is 两 and a whole hour is 整.
fn time(grammar: Grammar, value: &str, out: &mut Vec<String>) {
    let mut parts = value.split(':');
    let (Some(h), Some(m)) = (parts.next(), parts.next()) else {
        return;
    };
    let whole = |t: &str, max: u64| {
        (!t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
            .filter(|&n| n <= max)
    };
    let (Some(hour), Some(minute)) = (whole(h, 23), whole(m, 59)) else {
        return;
    };
    match grammar {
        Grammar::English => {
            let twelve = match hour % 12 {
                0 => 12,
                h => h,
            };
            english(twelve, out);
            match minute {
                0 => out.push("o_clock".into()),
                1..=9 => {
                    out.push("oh".into());
                    english(minute, out);
                }
                _ => english(minute, out),
            }
            out.push(if hour < 12 { "am" } else { "pm" }.into());
        }
        Grammar::Chinese => {
            if hour == 2 {
                out.push("liang".into());
            } else {
                chinese(hour, out);
            }
            out.push("point".into());
            match minute {
                0 => out.push("zheng".into()),
                1..=9 => {
                    out.push("0".into());
                    chinese(minute, out);
                    out.push("fen".into());
                }
                _ => {
                    chinese(minute, out);
                    out.push("fen".into());
                }
            }
        }
    }
}

fn digits(grammar: Grammar, value: &str, out: &mut Vec<String>) {
    for c in value.chars() {
        match c {
            // Chinese reads a 1 in numbers given digit by digit as "yao", not "yi".
            '1' if grammar == Grammar::Chinese => out.push("yao".into()),
            '0'..='9' => out.push(c.to_string()),
            '*' => out.push("star".into()),
            '#' => out.push("pound".into()),
            _ => {}
        }
    }
}

fn digits_plain(value: &str, out: &mut Vec<String>) {
    out.extend(
        value
            .chars()
            .filter(char::is_ascii_digit)
            .map(|c| c.to_string()),
    );
}

struct Decimal {
    negative: bool,
    whole: u64,
    fraction: String,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let text: String = text.chars().filter(|c| *c != ',').collect();
        let (negative, text) = match text.strip_prefix('-') {
            Some(t) => (true, t),
            None => (false, text.as_str()),
        };
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole.chars().all(|c| c.is_ascii_digit())
            || !fraction.chars().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        // Beyond a trillion is not a hotline figure; refusing keeps the word lists small.
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        if whole >= 1_000_000_000_000 {
            return None;
        }
        Some(Decimal {
            negative,
            whole,
            fraction: fraction.to_string(),
        })
    }
}

fn integer(grammar: Grammar, n: u64, out: &mut Vec<String>) {
    match grammar {
        Grammar::English => english(n, out),
        Grammar::Chinese => chinese(n, out),
    }
}

fn english(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push("0".into());
        return;
    }
    for (scale, word) in [
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ] {
        if n >= scale && !(n / scale).is_multiple_of(1000) {
            english_below_1000(n / scale % 1000, out);
            out.push(word.into());
        }
    }
    if !n.is_multiple_of(1000) {
        english_below_1000(n % 1000, out);
    }
}

fn english_below_1000(n: u64, out: &mut Vec<String>) {
    if n >= 100 {
        out.push((n / 100).to_string());
        out.push("hundred".into());
    }
    let rest = n % 100;
    if rest >= 20 {
        out.push((rest / 10 * 10).to_string());
        if !rest.is_multiple_of(10) {
            out.push((rest % 10).to_string());
        }
    } else if rest > 0 {
        out.push(rest.to_string());
    }
}

fn chinese(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push("0".into());
        return;
    }
    let groups = [
        (n / 100_000_000, "yi"),
        (n / 10_000 % 10_000, "wan"),
        (n % 10_000, ""),
    ];
    let mut started = false;
    let mut zero_pending = false;
    for (value, unit) in groups {
        if value == 0 {
            if started {
                zero_pending = true;
            }
            continue;
        }
        if started && (zero_pending || value < 1000) {
            out.push("0".into());
        }
        chinese_below_10000(value, !started, out);
        if !unit.is_empty() {
            out.push(unit.into());
        }
        started = true;
        zero_pending = false;
    }
}

/// 1..9999 with 千/百/十 and one 零 for each run of inner zeros. `leading`: the first group
/// of the number, where 10-19 is said 十… rather than 一十….
fn chinese_below_10000(n: u64, leading: bool, out: &mut Vec<String>) {
    let places = [(1000, "thousand"), (100, "hundred"), (10, "10"), (1, "")];
    let mut seen = false;
    let mut zero = false;
    for (scale, unit) in places {
        let d = n / scale % 10;
        if d == 0 {
            if seen {
                zero = true;
            }
            continue;
        }
        if zero {
            out.push("0".into());
            zero = false;
        }
        let first = !seen;
        seen = true;
        match (d, unit) {
            (1, "10") if first && leading => {}
            (2, "thousand" | "hundred") => out.push("liang".into()),
            _ => out.push(d.to_string()),
        }
        if !unit.is_empty() {
            out.push(unit.into());
        }
    }
}

fn amount(grammar: Grammar, value: &str, out: &mut Vec<String>) {
    let Some(n) = Decimal::parse(value) else {
        return;
    };
    let cents: u64 = {
        let mut f: String = n.fraction.chars().take(2).collect();
        while f.len() < 2 {
            f.push('0');
        }
        f.parse().unwrap_or(0)
    };
    if n.negative {
        out.push("minus".into());
    }
    match grammar {
        Grammar::English => {
            if n.whole > 0 || cents == 0 {
                english(n.whole, out);
                out.push("yuan".into());
            }
            if cents > 0 {
                if n.whole > 0 {
                    out.push("and".into());
                }
                english(cents, out);
                out.push(if cents == 1 { "cent" } else { "cents" }.into());
            }
        }
        Grammar::Chinese => {
            let (jiao, fen) = (cents / 10, cents % 10);
            if n.whole > 0 || cents == 0 {
                chinese(n.whole, out);
                out.push("yuan".into());
            }
            if cents == 0 {
                out.push("zheng".into());
                return;
            }
            if jiao > 0 {
                out.push(jiao.to_string());
                out.push("jiao".into());
            } else if n.whole > 0 {
                out.push("0".into());
            }
            if fen > 0 {
                out.push(fen.to_string());
                out.push("fen".into());
            }
        }
    }
}

fn date(grammar: Grammar, value: &str, out: &mut Vec<String>) {
    let Ok(d) = value
        .get(..10)
        .unwrap_or(value)
        .parse::<jiff::civil::Date>()
    else {
        return;
    };
    let (year, month, day) = (d.year() as u64, d.month() as u64, d.day() as u64);
    match grammar {
        Grammar::English => {
            out.push(format!("month_{month}"));
            out.push(format!("day_{day}"));
            english(year, out);
        }
        Grammar::Chinese => {
            digits_plain(&year.to_string(), out);
            out.push("year".into());
            chinese(month, out);
            out.push("month".into());
            chinese(day, out);
            out.push("day".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Grammar::*;
    use SayAs::*;

    fn say(g: Grammar, how: SayAs, v: &str) -> String {
        words(g, how, v).join(" ")
    }

    #[test]
    fn english_numbers() {
        assert_eq!(say(English, Number, "0"), "0");
        assert_eq!(say(English, Number, "15"), "15");
        assert_eq!(say(English, Number, "42"), "40 2");
        assert_eq!(say(English, Number, "100"), "1 hundred");
        assert_eq!(say(English, Number, "1205"), "1 thousand 2 hundred 5");
        assert_eq!(say(English, Number, "2000000"), "2 million");
        assert_eq!(say(English, Number, "1,000,017"), "1 million 17");
        assert_eq!(say(English, Number, "-3.25"), "minus 3 point 2 5");
        assert_eq!(say(English, Number, "abc"), "");
        assert_eq!(say(English, Number, "1e9"), "");
    }

    #[test]
    fn chinese_numbers_with_zeros_units_and_liang() {
        assert_eq!(say(Chinese, Number, "10"), "10");
        assert_eq!(say(Chinese, Number, "15"), "10 5");
        assert_eq!(say(Chinese, Number, "20"), "2 10");
        assert_eq!(say(Chinese, Number, "105"), "1 hundred 0 5");
        assert_eq!(say(Chinese, Number, "2000"), "liang thousand");
        assert_eq!(say(Chinese, Number, "1010"), "1 thousand 0 1 10");
        assert_eq!(
            say(Chinese, Number, "12345"),
            "1 wan liang thousand 3 hundred 4 10 5"
        );
        assert_eq!(say(Chinese, Number, "10005"), "1 wan 0 5");
        assert_eq!(say(Chinese, Number, "100000"), "10 wan");
        assert_eq!(say(Chinese, Number, "110000"), "10 1 wan");
        assert_eq!(say(Chinese, Number, "200000000"), "2 yi");
        assert_eq!(say(Chinese, Number, "100000001"), "1 yi 0 1");
    }

    #[test]
    fn amounts() {
        assert_eq!(say(English, Amount, "12.50"), "12 yuan and 50 cents");
        assert_eq!(say(English, Amount, "0.01"), "1 cent");
        assert_eq!(say(English, Amount, "3"), "3 yuan");
        assert_eq!(say(Chinese, Amount, "12.50"), "10 2 yuan 5 jiao");
        assert_eq!(say(Chinese, Amount, "12.05"), "10 2 yuan 0 5 fen");
        assert_eq!(say(Chinese, Amount, "12"), "10 2 yuan zheng");
        assert_eq!(say(Chinese, Amount, "0.35"), "3 jiao 5 fen");
    }

    #[test]
    fn dates_and_digits() {
        assert_eq!(
            say(English, Date, "2026-12-01"),
            "month_12 day_1 2 thousand 20 6"
        );
        assert_eq!(
            say(Chinese, Date, "2026-12-01"),
            "2 0 2 6 year 10 2 month 1 day"
        );
        assert_eq!(say(English, Date, "2026-02-30"), "");
        assert_eq!(say(English, Digits, "10*#"), "1 0 star pound");
        assert_eq!(say(English, Time, "14:30"), "2 30 pm");
        assert_eq!(say(English, Time, "09:05"), "9 oh 5 am");
        assert_eq!(say(English, Time, "00:00"), "12 o_clock am");
        assert_eq!(say(English, Time, "12:45:59"), "12 40 5 pm");
        assert_eq!(say(Chinese, Time, "14:30"), "10 4 point 3 10 fen");
        assert_eq!(say(Chinese, Time, "02:00"), "liang point zheng");
        assert_eq!(say(Chinese, Time, "8:05"), "8 point 0 5 fen");
        for bad in ["24:00", "12:60", "1230", "ab:cd", "", "-1:30", "123:00"] {
            assert_eq!(say(English, Time, bad), "", "{bad}");
        }
        assert_eq!(say(Chinese, Digits, "110"), "yao yao 0");
    }

    #[test]
    fn every_word_said_is_in_the_grammar_word_list() {
        let mut rng = fastrand::Rng::with_seed(11);
        for g in [English, Chinese] {
            let known = g.words();
            for _ in 0..3000 {
                let n = rng.u64(..1_000_000_000_000);
                let v = format!("{n}.{:02}", rng.u32(..100));
                for how in [Number, Amount, Digits] {
                    for w in words(g, how, &v) {
                        assert!(known.contains(&w), "{g:?} {how:?} {v}: {w}");
                    }
                }
            }
            for w in words(g, Date, "2031-09-30") {
                assert!(known.contains(&w), "{w}");
            }
            for h in 0..24 {
                for m in 0..60 {
                    for w in words(g, Time, &format!("{h:02}:{m:02}")) {
                        assert!(known.contains(&w), "{g:?} {h}:{m}: {w}");
                    }
                }
            }
        }
    }
}
