import Foundation
import Testing

@testable import NFLDBFernet

/// The table-driven codec (pair table for encoding, pre-shifted tables for decoding) against the
/// byte-at-a-time codec it replaced, kept here as the reference: the same bytes out, and the same
/// inputs refused (non-alphabet characters, `=` anywhere but the end, wrong lengths, non-zero
/// trailing bits).
@Suite("Base64URL codec")
struct Base64URLTests {
    /// The decoder before the table-driven one (commit 5b92bda), unchanged.
    enum Reference {
        static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
            let decodeTable = Base64URL.decodeTable
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
    }

    static func decodeBoth(_ text: [UInt8]) -> (ours: [UInt8]?, reference: [UInt8]?) {
        text.withUnsafeBytes { input in
            var a = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
            var b = a
            let ours = a.withUnsafeMutableBytes { Base64URL.decode(input, into: $0) }.map { Array(a[0..<$0]) }
            let reference = b.withUnsafeMutableBytes { Reference.decode(input, into: $0) }.map { Array(b[0..<$0]) }
            return (ours, reference)
        }
    }

    @Test("every string of up to 5 characters over a hostile alphabet decodes (or is refused) exactly as the reference does")
    func exhaustiveShort() {
        // Alphabet corners, padding, the standard-base64 characters, whitespace, NUL and a non-ASCII byte.
        let symbols: [UInt8] = Array("AQgw_-=+/ ".utf8) + [0x0A, 0x00, 0xFF]
        var mismatches = 0
        var accepted = 0
        var text: [UInt8] = []
        func walk(_ depth: Int) {
            let (ours, reference) = Self.decodeBoth(text)
            if ours != reference { mismatches += 1 }
            if ours != nil { accepted += 1 }
            guard depth < 5 else { return }
            for symbol in symbols {
                text.append(symbol)
                walk(depth + 1)
                text.removeLast()
            }
        }
        walk(0)
        #expect(mismatches == 0)
        #expect(accepted > 1000)
    }

    @Test("random strings of 6…130 characters, mostly valid, with one character or the padding changed, agree with the reference")
    func randomLonger() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Base64URL.alphabet
        let hostile: [UInt8] = Array("=+/ .".utf8) + [0x0A, 0x00, 0x80, 0xFF]
        var mismatches = 0
        for round in 0..<20000 {
            let length = Int.random(in: 6...130, using: &generator)
            var text = (0..<length).map { _ in alphabet[Int.random(in: 0..<64, using: &generator)] }
            switch round % 4 {
            case 0: break
            case 1: text[Int.random(in: 0..<length, using: &generator)] = hostile.randomElement(using: &generator)!
            case 2: text += Array(repeating: UInt8(ascii: "="), count: Int.random(in: 1...3, using: &generator))
            default: text[length - 1] = UInt8(ascii: "=")
            }
            let (ours, reference) = Self.decodeBoth(text)
            if ours != reference { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("encoding matches Foundation (made URL-safe) for every length 0…300")
    func encodeMatchesFoundation() {
        for length in 0...300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255) }
            let ours = Base64URL.encode(bytes)
            let foundation = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            #expect(ours == foundation, "length \(length)")
            #expect(Base64URL.decode(ours) == bytes, "length \(length)")
            // Without its padding it still decodes (as before); with a third `=` it does not.
            #expect(Base64URL.decode(ours.replacingOccurrences(of: "=", with: "")) == bytes, "length \(length)")
            if ours.hasSuffix("=") { #expect(Base64URL.decode(ours + "=") == nil, "length \(length)") }
        }
    }

    @Test("refused: a character outside the URL-safe alphabet at any position of a token, `=` inside, wrong lengths, non-zero trailing bits")
    func refusals() throws {
        let token = try Fernet(key: FernetKey.generate()).encrypt("4111-1111-1111-1111")
        let bytes = Array(token.utf8)
        for position in bytes.indices {
            // `=` in the last two places can make valid shorter padding ("…X=" → "…==" decodes whenever X's low four
            // bits happen to be zero, 1 token in 16): that is canonical Base64 of other bytes, not a refusal case.
            for bad in Array("=+/ .".utf8) + [0x0A, 0x00, 0xFF] where !(bad == UInt8(ascii: "=") && position >= bytes.count - 2) {
                var copy = bytes
                copy[position] = bad
                #expect(Self.decodeBoth(copy).ours == nil, "position \(position) byte \(bad)")
            }
        }
        // Lengths: 4k+1 characters never decode; padding only on a multiple of 4.
        for text in ["A", "AAAAA", "AAAAAAAAA", "AA=", "AAA==", "AAAA=", "A===", "====", "AA==AA==", "AAAA===="] {
            #expect(Base64URL.decode(text) == nil, "\(text)")
        }
        // Non-canonical: the unused low bits of the last character must be zero.
        #expect(Base64URL.decode("AA==") == [0])
        #expect(Base64URL.decode("AB==") == nil)
        #expect(Base64URL.decode("AAA=") == [0, 0])
        #expect(Base64URL.decode("AAB=") == nil)
        #expect(Base64URL.decode("") == [])
    }
}
