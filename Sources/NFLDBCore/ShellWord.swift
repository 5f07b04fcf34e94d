import Foundation

/// Text as one POSIX shell word, for commands nfldb prints as hints (copied into a shell as is).
public enum ShellWord {
    /// `text` unchanged when it holds only characters no shell treats specially, else single-quoted
    /// (`'` written as `'\''`). An empty string is `''`.
    public static func quote(_ text: String) -> String {
        guard text.isEmpty || text.contains(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "_.-/=,:@%+".contains($0))) }) else { return text }
        return "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
