//! Identifiers minted per request: UUIDv7 (time-ordered) from a per-thread generator, so
//! minting one costs no system call. They identify requests and records; they are not secrets.

/// A new UUIDv7 in its hyphenated text form.
pub fn uuid_v7() -> String {
    let ms = crate::time::now_ms() as u64;
    let random = fastrand::u128(..).to_le_bytes();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random[..10]);
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_version_7_unique_and_time_ordered() {
        let a = super::uuid_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::uuid_v7();
        let ua = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(ua.get_version_num(), 7);
        assert_eq!(ua.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
        assert!(a < b, "{a} then {b}");
        let many: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::uuid_v7()).collect();
        assert_eq!(many.len(), 10_000);
    }
}
