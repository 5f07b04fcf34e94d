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

    /// The four positions of a 4-character group, each its 6 bits already shifted into place
    /// (`[0..<256]` for the first character, `<< 18`, … `[768..<1024]` for the last, `<< 0`); a byte
    /// outside the alphabet (including `=`) is `0xFF000000`, so one OR over a whole token tells
    /// whether any character was invalid. 4 KiB, stays in L1.
    static let decodeShifted: [UInt32] = {
        var table = [UInt32](repeating: 0xFF00_0000, count: 1024)
        for (index, byte) in alphabet.enumerated() {
            for position in 0..<4 { table[position * 256 + Int(byte)] = UInt32(index) << (18 - 6 * position) }
        }
        return table
    }()

    static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Two characters for every 12-bit value, as a little-endian `UInt16` (first character in the
    /// low byte): 3 input bytes become 2 lookups and one 4-byte store (8 KiB, stays in L1).
    static let encodePairs: [UInt16] = (0..<4096).map { UInt16(alphabet[$0 >> 6]) | UInt16(alphabet[$0 & 63]) << 8 }

    /// Encodes `input` into `output`, which must hold ``encodedLength(_:)`` bytes.
    static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        let count = input.count
        guard count > 0 else { return }
        let inBase = input.baseAddress!, outBase = output.baseAddress!
        encodePairs.withUnsafeBufferPointer { pairs in
            var i = 0
            var o = 0
            // 6 bytes per step while 8 can be read: one 8-byte load, four pair lookups, one 8-byte store.
            while i + 8 <= count {
                let word = UInt64(bigEndian: inBase.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let eight = UInt64(pairs[Int(truncatingIfNeeded: word >> 52)])
                    | UInt64(pairs[Int(truncatingIfNeeded: word >> 40) & 0xFFF]) << 16
                    | UInt64(pairs[Int(truncatingIfNeeded: word >> 28) & 0xFFF]) << 32
                    | UInt64(pairs[Int(truncatingIfNeeded: word >> 16) & 0xFFF]) << 48
                outBase.storeBytes(of: eight.littleEndian, toByteOffset: o, as: UInt64.self)
                i += 6
                o += 8
            }
            while i + 3 <= count {
                let value = Int(inBase.load(fromByteOffset: i, as: UInt8.self)) << 16
                    | Int(inBase.load(fromByteOffset: i + 1, as: UInt8.self)) << 8
                    | Int(inBase.load(fromByteOffset: i + 2, as: UInt8.self))
                let four = UInt32(pairs[value >> 12]) | UInt32(pairs[value & 0xFFF]) << 16
                outBase.storeBytes(of: four.littleEndian, toByteOffset: o, as: UInt32.self)
                i += 3
                o += 4
            }
            alphabet.withUnsafeBufferPointer { table in
                let rest = count - i
                if rest == 1 {
                    let value = Int(input[i]) << 16
                    output[o] = table[value >> 18 & 63]
                    output[o + 1] = table[value >> 12 & 63]
                    output[o + 2] = UInt8(ascii: "=")
                    output[o + 3] = UInt8(ascii: "=")
                } else if rest == 2 {
                    let value = Int(input[i]) << 16 | Int(input[i + 1]) << 8
                    output[o] = table[value >> 18 & 63]
                    output[o + 1] = table[value >> 12 & 63]
                    output[o + 2] = table[value >> 6 & 63]
                    output[o + 3] = UInt8(ascii: "=")
                }
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
        let inBase = input.baseAddress, outBase = output.baseAddress
        return decodeTable.withUnsafeBufferPointer { table -> Int? in
            var i = 0
            var o = 0
            var bad: UInt32 = 0
            if let inBase, let outBase {
                decodeShifted.withUnsafeBufferPointer { shifted in
                    while i + 4 <= end {
                        let four = UInt32(littleEndian: inBase.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                        let value = shifted[Int(four & 0xFF)]
                            | shifted[256 + Int(four >> 8 & 0xFF)]
                            | shifted[512 + Int(four >> 16 & 0xFF)]
                            | shifted[768 + Int(four >> 24)]
                        bad |= value
                        outBase.storeBytes(of: UInt8(truncatingIfNeeded: value >> 16), toByteOffset: o, as: UInt8.self)
                        outBase.storeBytes(of: UInt8(truncatingIfNeeded: value >> 8), toByteOffset: o + 1, as: UInt8.self)
                        outBase.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: o + 2, as: UInt8.self)
                        i += 4
                        o += 3
                    }
                }
            }
            if bad & 0xFF00_0000 != 0 { return nil }
            if tail == 2 {
                let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                if (a | b) & 0x80 != 0 || b & 0x0F != 0 { return nil }
                output[o] = UInt8(truncatingIfNeeded: (UInt32(a) << 2) | (UInt32(b) >> 4))
                o += 1
            } else if tail == 3 {
                let a = table[Int(input[i])], b = table[Int(input[i + 1])], c = table[Int(input[i + 2])]
                if (a | b | c) & 0x80 != 0 || c & 0x03 != 0 { return nil }
                let value = UInt32(a) << 10 | UInt32(b) << 4 | UInt32(c) >> 2
                output[o] = UInt8(truncatingIfNeeded: value >> 8)
                output[o + 1] = UInt8(truncatingIfNeeded: value)
                o += 2
            }
            return o
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
