/// The size limits of the wire protocol, in payload bytes (the 4-byte length prefix is not counted).
///
/// A peer that announces a larger frame is disconnected before any of it is buffered.
public enum FrameLimits {
    /// Largest frame accepted before the session is established (`Hello`, `EnrollRequest`, `Welcome`).
    public static let beforeSession: Int = 64 * 1024
    /// Largest frame accepted once the session is established (default 4 MiB).
    public static let established: Int = 4 * 1024 * 1024
    /// Current protocol version; the server also speaks `protocolVersion - 1`.
    public static let protocolVersion: UInt32 = 1
}
