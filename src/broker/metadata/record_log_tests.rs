//! Tests of `record_log`, over a toy record type: current payload `[1] ++ UTF-8`, legacy
//! payload plain UTF-8.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
struct Text(String);

impl MetaRecord for Text {
    const FILE_KIND: u8 = 9;
    fn encode(&self) -> Result<Vec<u8>, String> {
        let mut p = vec![1];
        p.extend_from_slice(self.0.as_bytes());
        Ok(p)
    }
    fn decode(payload: &[u8]) -> Result<Self, String> {
        match payload.split_first() {
            Some((1, body)) => Self::decode_legacy(body),
            _ => Err("bad version".into()),
        }
    }
    fn decode_legacy(payload: &[u8]) -> Result<Self, String> {
        String::from_utf8(payload.to_vec())
            .map(Text)
            .map_err(|e| e.to_string())
    }
}

fn t(s: &str) -> Text {
    Text(s.to_string())
}

fn file_with(records: &[&str]) -> Vec<u8> {
    let mut bytes = header_frame(Text::FILE_KIND);
    for r in records {
        bytes.extend(encode_frame(&t(r).encode().unwrap_or_default()));
    }
    bytes
}

fn open(path: &Path) -> Result<Vec<Text>, Error> {
    RecordLog::<Text>::open(path).map(|(_, r)| r)
}

#[test]
fn a_new_file_starts_with_the_header_frame() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let (mut log, recs) = RecordLog::<Text>::open(&path).expect("open");
    assert!(recs.is_empty());
    log.append(&t("one"), true).expect("append");
    assert_eq!(std::fs::read(&path).expect("read"), file_with(&["one"]));
}

#[test]
fn a_record_over_the_reader_bound_is_refused_not_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let (mut log, _) = RecordLog::<Text>::open(&path).expect("open");
    log.append(&t("one"), true).expect("append");
    // Payload = version byte + text: exactly the bound is accepted, one byte more is not.
    let at_bound = "x".repeat(METADATA_RECORD_BYTES_MAX - 1);
    let over = "x".repeat(METADATA_RECORD_BYTES_MAX);
    let err = log.append(&t(&over), true).expect_err("over the bound");
    assert!(err.to_string().contains("not written"), "{err}");
    assert!(log.append_all(&[t("two"), t(&over)]).is_err());
    assert_eq!(std::fs::read(&path).expect("read"), file_with(&["one"]));
    log.append(&t(&at_bound), true).expect("at the bound");
    drop(log);
    assert_eq!(open(&path).expect("reopen"), vec![t("one"), t(&at_bound)]);
}

#[test]
fn append_all_writes_every_record_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let (mut log, _) = RecordLog::<Text>::open(&path).expect("open");
    log.append_all(&[t("a"), t("b"), t("c")]).expect("append");
    log.sync_handle()
        .expect("handle")
        .sync_data()
        .expect("sync");
    drop(log);
    assert_eq!(open(&path).expect("reopen"), vec![t("a"), t("b"), t("c")]);
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    {
        let (mut log, _) = RecordLog::<Text>::open(&path).expect("open");
        log.append(&t("one"), true).expect("append");
        log.append(&t("two"), true).expect("append");
    }
    let len = std::fs::metadata(&path).expect("meta").len();
    let f = OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(len - 2).expect("truncate");
    let (mut log, recs) = RecordLog::<Text>::open(&path).expect("open");
    assert_eq!(recs, vec![t("one")]);
    assert_eq!(std::fs::read(&path).expect("read"), file_with(&["one"]));
    log.append(&t("three"), true).expect("append");
    assert_eq!(open(&path).expect("open"), vec![t("one"), t("three")]);
}

#[test]
fn a_crc_mismatch_cuts_from_that_frame_even_before_intact_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let mut bytes = file_with(&["one", "two", "three"]);
    let second = file_with(&["one"]).len();
    bytes[second + 8] ^= 0x40; // first payload byte of "two"
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(open(&path).expect("open"), vec![t("one")]);
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), second as u64);
}

#[test]
fn a_zero_filled_tail_is_cut_not_read_as_empty_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let mut bytes = file_with(&["one"]);
    let valid = bytes.len();
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(open(&path).expect("open"), vec![t("one")]);
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), valid as u64);
}

#[test]
fn an_intact_frame_that_does_not_decode_stops_the_open_and_keeps_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let mut bytes = file_with(&["one"]);
    let offset = bytes.len();
    bytes.extend(encode_frame(&[1, 0xff, 0xfe])); // CRC right, not UTF-8
    bytes.extend(encode_frame(&t("after").encode().unwrap_or_default()));
    std::fs::write(&path, &bytes).expect("write");
    let e = open(&path)
        .expect_err("an undecodable record was accepted")
        .to_string();
    assert!(e.contains("m.meta"), "{e}");
    assert!(e.contains(&format!("byte offset {offset}")), "{e}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "the file was changed"
    );
}

#[test]
fn a_header_of_another_kind_or_a_newer_format_stops_the_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    for header in [
        header_frame(Text::FILE_KIND + 1),
        encode_frame(&[
            b'T',
            b'S',
            b'M',
            b'D',
            FILE_FORMAT_VERSION + 1,
            Text::FILE_KIND,
        ]),
    ] {
        let mut bytes = header;
        bytes.extend(encode_frame(&t("one").encode().unwrap_or_default()));
        std::fs::write(&path, &bytes).expect("write");
        let e = open(&path).expect_err("accepted").to_string();
        assert!(e.contains("byte offset 0"), "{e}");
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }
}

#[test]
fn a_legacy_file_is_read_and_rewritten_in_the_current_format() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let mut legacy = Vec::new();
    for r in ["one", "two"] {
        legacy.extend(encode_frame(r.as_bytes()));
    }
    legacy.extend_from_slice(&[0, 0, 0, 9, 1]); // torn tail
    std::fs::write(&path, &legacy).expect("write");
    let (mut log, recs) = RecordLog::<Text>::open(&path).expect("open");
    assert_eq!(recs, vec![t("one"), t("two")]);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        file_with(&["one", "two"])
    );
    log.append(&t("three"), true).expect("append");
    assert_eq!(
        open(&path).expect("open"),
        vec![t("one"), t("two"), t("three")]
    );
}

#[test]
fn rewrite_replaces_contents() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.meta");
    let (mut log, _) = RecordLog::<Text>::open(&path).expect("open");
    for i in 0..10 {
        log.append(&t(&i.to_string()), false).expect("append");
    }
    log.rewrite(&[t("7"), t("8")]).expect("rewrite");
    log.append(&t("9"), true).expect("append");
    assert_eq!(open(&path).expect("open"), vec![t("7"), t("8"), t("9")]);
}

proptest! {
    #[test]
    fn frames_round_trip(records in proptest::collection::vec("[a-z]{0,12}", 0..20)) {
        let refs: Vec<&str> = records.iter().map(String::as_str).collect();
        let bytes = file_with(&refs);
        let d = decode_file::<Text>(&bytes).map_err(|e| TestCaseError::fail(e.reason))?;
        prop_assert_eq!(d.valid_bytes, bytes.len());
        prop_assert_eq!(d.format, FileFormat::Current);
        prop_assert_eq!(d.records, records.into_iter().map(Text).collect::<Vec<_>>());
    }

    #[test]
    fn any_prefix_decodes_to_a_prefix(records in proptest::collection::vec("[a-z]{0,12}", 1..10), cut in any::<prop::sample::Index>()) {
        let refs: Vec<&str> = records.iter().map(String::as_str).collect();
        let bytes = file_with(&refs);
        let cut = cut.index(bytes.len());
        let d = decode_file::<Text>(&bytes[..cut]).map_err(|e| TestCaseError::fail(e.reason))?;
        prop_assert!(d.records.len() <= records.len());
        let got: Vec<String> = d.records.into_iter().map(|r| r.0).collect();
        prop_assert_eq!(&records[..got.len()], &got[..]);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_file::<Text>(&bytes);
    }
}
