/// URL-safe base64 (RFC 4648 §5) with `=` padding, as Fernet and Python's `base64.urlsafe_b64encode` use.
///
/// Hand-written over byte buffers because it runs twice per field value: Foundation's base64 plus
/// character replacement cost more than the AES and HMAC together.
enum Base64URL {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0xFF for bytes outside the URL-safe alphabet.
    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Encodes `input` into `output`, which must hold ``encodedLength(_:)`` bytes.
    static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        alphabet.withUnsafeBufferPointer { table in
            var i = 0
            var o = 0
            let count = input.count
            while i + 3 <= count {
                let value = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                output[o] = table[Int(value >> 18 & 63)]
                output[o + 1] = table[Int(value >> 12 & 63)]
                output[o + 2] = table[Int(value >> 6 & 63)]
                output[o + 3] = table[Int(value & 63)]
                i += 3
                o += 4
            }
            let rest = count - i
            if rest == 1 {
                let value = UInt32(input[i]) << 16
                output[o] = table[Int(value >> 18 & 63)]
                output[o + 1] = table[Int(value >> 12 & 63)]
                output[o + 2] = UInt8(ascii: "=")
                output[o + 3] = UInt8(ascii: "=")
            } else if rest == 2 {
                let value = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                output[o] = table[Int(value >> 18 & 63)]
                output[o + 1] = table[Int(value >> 12 & 63)]
                output[o + 2] = table[Int(value >> 6 & 63)]
                output[o + 3] = UInt8(ascii: "=")
            }
        }
    }

    static func encode(_ bytes: [UInt8]) -> String {
        let length = encodedLength(bytes.count)
        return bytes.withUnsafeBytes { input in
            String(unsafeUninitializedCapacity: length) { buffer in
                encode(input, into: UnsafeMutableRawBufferPointer(buffer))
                return length
            }
        }
    }

    /// Decodes into `output` (at least `input.count / 4 * 3` bytes); returns the byte count, or nil
    /// for a character outside the URL-safe alphabet, misplaced padding or an impossible length.
    /// Missing trailing padding is accepted (Python requires it; accepting more is harmless because
    /// the HMAC covers every decoded byte).
    static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        var end = input.count
        var padding = 0
        while end > 0, input[end - 1] == UInt8(ascii: "="), padding < 2 {
            end -= 1
            padding += 1
        }
        if padding > 0, input.count % 4 != 0 { return nil }
        let tail = end % 4
        if tail == 1 { return nil }
        return decodeTable.withUnsafeBufferPointer { table -> Int? in
            var i = 0
            var o = 0
            var bad: UInt8 = 0
            while i + 4 <= end {
                let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                let c = table[Int(input[i + 2])], d = table[Int(input[i + 3])]
                bad |= (a | b | c | d) & 0x80
                let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                output[o] = UInt8(truncatingIfNeeded: value >> 16)
                output[o + 1] = UInt8(truncatingIfNeeded: value >> 8)
                output[o + 2] = UInt8(truncatingIfNeeded: value)
                i += 4
                o += 3
            }
            if tail == 2 {
                let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                bad |= (a | b) & 0x80
                if b & 0x0F != 0 { return nil }
                output[o] = UInt8(truncatingIfNeeded: (UInt32(a) << 2) | (UInt32(b) >> 4))
                o += 1
            } else if tail == 3 {
                let a = table[Int(input[i])], b = table[Int(input[i + 1])], c = table[Int(input[i + 2])]
                bad |= (a | b | c) & 0x80
                if c & 0x03 != 0 { return nil }
                let value = UInt32(a) << 10 | UInt32(b) << 4 | UInt32(c) >> 2
                output[o] = UInt8(truncatingIfNeeded: value >> 8)
                output[o + 1] = UInt8(truncatingIfNeeded: value)
                o += 2
            }
            return bad == 0 ? o : nil
        }
    }

    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var utf8 = Array(text.utf8)
        return utf8.withUnsafeMutableBytes { input -> [UInt8]? in
            var output = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
            guard let count = output.withUnsafeMutableBytes({ decode(UnsafeRawBufferPointer(input), into: $0) }) else { return nil }
            output.removeLast(output.count - count)
            return output
        }
    }
}
