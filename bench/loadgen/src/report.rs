//! One result object per run: printed as a JSON line on stdout, summarised on stderr.

use hdrhistogram::Histogram;

pub struct Report {
    fields: Vec<(String, Value)>,
}

enum Value {
    Num(f64),
    Text(String),
}

impl Report {
    pub fn new(kind: &str, label: &str) -> Self {
        let mut r = Report { fields: Vec::new() };
        r.text("kind", kind);
        if !label.is_empty() {
            r.text("label", label);
        }
        r
    }

    pub fn num(&mut self, key: &str, v: f64) -> &mut Self {
        self.fields.push((key.to_string(), Value::Num(v)));
        self
    }

    pub fn text(&mut self, key: &str, v: &str) -> &mut Self {
        self.fields
            .push((key.to_string(), Value::Text(v.to_string())));
        self
    }

    pub fn get_text(&self, key: &str) -> Option<String> {
        self.fields.iter().find_map(|(k, v)| match v {
            Value::Text(t) if k == key => Some(t.clone()),
            _ => None,
        })
    }

    /// p50/p99/p999/max in milliseconds, under `<prefix>_p50_ms` etc.
    pub fn latency(&mut self, prefix: &str, h: &Histogram<u64>) -> &mut Self {
        if h.is_empty() {
            return self;
        }
        for (name, q) in [("p50", 0.50), ("p99", 0.99), ("p999", 0.999)] {
            self.num(
                &format!("{prefix}_{name}_ms"),
                h.value_at_quantile(q) as f64 / 1000.0,
            );
        }
        self.num(&format!("{prefix}_max_ms"), h.max() as f64 / 1000.0)
    }

    pub fn print(&self) {
        let human: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| match v {
                Value::Num(n) => format!("{k}={}", fmt_num(*n)),
                Value::Text(t) => format!("{k}={t}"),
            })
            .collect();
        eprintln!("{}", human.join("  "));
        let json: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| match v {
                Value::Num(n) if n.is_finite() => format!("\"{k}\": {}", fmt_num(*n)),
                Value::Num(_) => format!("\"{k}\": null"),
                Value::Text(t) => format!("\"{k}\": \"{}\"", escape(t)),
            })
            .collect();
        println!("{{{}}}", json.join(", "));
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.4}")
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
