import XCTest

@testable import CrowsnestServer

final class SQLScriptTests: XCTestCase {
    func testSplitsAtTopLevelSemicolonsAndKeepsStartLines() {
        let script = """
            CREATE TABLE a (x int);

            -- a comment; with a semicolon
            CREATE TABLE b (y text DEFAULT 'semi;colon');
            INSERT INTO b VALUES ('it''s; fine')
            """
        let statements = SQLScript.statements(in: script)
        XCTAssertEqual(statements.map(\.line), [1, 4, 5], "a statement starts at its first token, after comments")
        XCTAssertEqual(statements[0].sql, "CREATE TABLE a (x int)")
        XCTAssertTrue(statements[1].sql.hasSuffix("CREATE TABLE b (y text DEFAULT 'semi;colon')"), statements[1].sql)
        XCTAssertEqual(statements[2].sql, "INSERT INTO b VALUES ('it''s; fine')")
    }

    func testDollarQuotedBodiesStayWhole() {
        let script = """
            DO $$ BEGIN PERFORM 1; PERFORM 2; END $$;
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$
            DECLARE x int := 1; -- inner; comment
            BEGIN RETURN x; END;
            $fn$;
            SELECT $1; SELECT a$b FROM t;
            """
        let statements = SQLScript.statements(in: script)
        XCTAssertEqual(statements.count, 4, "\(statements)")
        XCTAssertEqual(statements[0].sql, "DO $$ BEGIN PERFORM 1; PERFORM 2; END $$")
        XCTAssertTrue(statements[1].sql.hasPrefix("CREATE FUNCTION f()"))
        XCTAssertTrue(statements[1].sql.hasSuffix("$fn$"))
        XCTAssertEqual(statements[1].line, 2)
        XCTAssertEqual(statements[2].sql, "SELECT $1")
        XCTAssertEqual(statements[3].sql, "SELECT a$b FROM t")
    }

    func testCommentsQuotedIdentifiersAndEscapeStrings() {
        let script = """
            /* block; /* nested; */ still comment; */
            SELECT "odd;name", E'back\\'slash;', 'plain\\'; SELECT 2;
            -- only a comment;
            ;;
            """
        let statements = SQLScript.statements(in: script)
        XCTAssertEqual(statements.count, 2, "\(statements)")
        XCTAssertTrue(statements[0].sql.hasSuffix(#"SELECT "odd;name", E'back\'slash;', 'plain\'"#), statements[0].sql)
        XCTAssertEqual(statements[0].line, 2)
        XCTAssertEqual(statements[1].sql, "SELECT 2")
        XCTAssertEqual(statements[1].line, 2)
    }

    func testEmptyAndCommentOnlyScriptsHaveNoStatements() {
        XCTAssertEqual(SQLScript.statements(in: ""), [])
        XCTAssertEqual(SQLScript.statements(in: "-- nothing here\n/* nor here */\n"), [])
    }
}
