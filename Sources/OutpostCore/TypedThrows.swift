extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps a typed error (the standard library's version is only `rethrows`).
    @inlinable
    public func withBytes<Value, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Value
    ) throws(Failure) -> Value {
        let result: Result<Value, Failure> = withUnsafeBytes { buffer in
            Result { () throws(Failure) -> Value in try body(buffer) }
        }
        return try result.get()
    }

    @inlinable
    public mutating func withMutableBytes<Value, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Value
    ) throws(Failure) -> Value {
        let result: Result<Value, Failure> = withUnsafeMutableBytes { buffer in
            Result { () throws(Failure) -> Value in try body(buffer) }
        }
        return try result.get()
    }
}
