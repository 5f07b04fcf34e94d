@testable import NFLDBMigrations
import Testing

/// The drift diff `migrate down` and `migrate verify` print.
@Suite("line diff") struct LineDiffTests {
    @Test("a changed line shows its old side (-) before its new side (+), as diff(1) does, with one line of context")
    func changedLineOrder() {
        let diff = lineDiff(old: "CREATE TABLE t (\n  id int,\n  name text\n);", new: "CREATE TABLE t (\n  id int,\n  name varchar(20)\n);")
        let lines = diff.split(separator: "\n").map(String.init)
        #expect(lines.prefix(2) == ["  --- old", "  +++ new"], "\(diff)")
        let minus = lines.firstIndex(of: "  -   name text"), plus = lines.firstIndex(of: "  +   name varchar(20)")
        #expect(minus != nil && plus != nil && minus! < plus!, "\(diff)")
        #expect(lines.contains("      id int,") && lines.contains("    );"), "\(diff)")
    }
}
