/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) used to detect torn or
/// corrupted spool records and state files. Table-driven, no dependency.
///
/// Check value: `SpoolChecksum.crc32c("123456789".utf8) == 0xE306_9283`.
enum SpoolChecksum {
    /// 256-entry lookup table, built once.
    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
        }
        return crc
    }

    /// Continues a running CRC-32C over `bytes`; start with `0` and feed chunks in order.
    static func update<Bytes: Sequence>(_ crc: UInt32, _ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var value = ~crc
        table.withUnsafeBufferPointer { table in
            for byte in bytes {
                value = table[Int((value ^ UInt32(byte)) & 0xFF)] ^ (value >> 8)
            }
        }
        return ~value
    }

    /// CRC-32C of `bytes` in one call.
    static func crc32c<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        update(0, bytes)
    }
}
