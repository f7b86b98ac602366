import AzureIoTCore

/// The part of IoT Hub's query language the emulator answers: `SELECT * FROM devices` or `FROM devices.modules`,
/// with an optional `WHERE` of comparisons (`=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`) between a twin path
/// (`deviceId`, `status`, `tags.location.region`, `properties.reported.fw`) and a literal (a string in single or
/// double quotes, a number, `true`, `false`, `null`), joined by `AND`, `OR`, `NOT` and parentheses. Keywords are
/// case-insensitive. Pure: parsing is bounded (length, tokens, nesting) and never traps.
struct TwinQuery: Equatable {
    enum Source: Equatable {
        case devices
        case modules
    }

    indirect enum Condition: Equatable {
        case comparison(path: [String], operator: Operator, value: JSONValue)
        case and(Condition, Condition)
        case or(Condition, Condition)
        case not(Condition)
    }

    enum Operator: String, Equatable {
        case equal = "="
        case notEqual = "!="
        case less = "<"
        case greater = ">"
        case lessOrEqual = "<="
        case greaterOrEqual = ">="
    }

    struct ParseError: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    static let maximumLength = 8 * 1024
    static let maximumTokens = 1_024
    static let maximumNesting = 32

    var source: Source
    var condition: Condition?

    init(parsing text: String) throws(ParseError) {
        guard text.utf8.count <= Self.maximumLength else {
            throw ParseError(description: "the query is longer than \(Self.maximumLength) bytes")
        }
        var parser = Parser(tokens: try Self.tokenize(text))
        guard parser.keyword("SELECT"), parser.take(.symbol("*")) else {
            throw ParseError(
                description: "only 'SELECT * FROM devices' and 'SELECT * FROM devices.modules' are supported"
            )
        }
        guard parser.keyword("FROM"), case .word(let collection)? = parser.next() else {
            throw ParseError(description: "the query has no FROM clause")
        }
        switch collection.lowercased() {
        case "devices": self.source = .devices
        case "devices.modules": self.source = .modules
        default: throw ParseError(description: "unknown collection '\(collection.prefix(64))'")
        }
        self.condition = nil
        if parser.keyword("WHERE") {
            self.condition = try parser.expression(depth: 0)
        }
        guard parser.atEnd else { throw ParseError(description: "unexpected text after the query") }
    }

    /// Whether `document` (a twin as the service API returns it) matches.
    func matches(_ document: JSONValue) -> Bool {
        self.condition.map { Self.evaluate($0, document) } ?? true
    }

    private static func evaluate(_ condition: Condition, _ document: JSONValue) -> Bool {
        switch condition {
        case .and(let left, let right): return evaluate(left, document) && evaluate(right, document)
        case .or(let left, let right): return evaluate(left, document) || evaluate(right, document)
        case .not(let inner): return !evaluate(inner, document)
        case .comparison(let path, let op, let value):
            var current: JSONValue? = document
            for key in path { current = current?[key] }
            guard let current else { return false }
            return compare(current, op, value)
        }
    }

    private static func compare(_ left: JSONValue, _ op: Operator, _ right: JSONValue) -> Bool {
        let order: Int?
        switch (left, right) {
        case (.string(let a), .string(let b)): order = a == b ? 0 : (a < b ? -1 : 1)
        case (.number(let a), .number(let b)):
            order = a.doubleValue == b.doubleValue ? 0 : (a.doubleValue < b.doubleValue ? -1 : 1)
        case (.bool(let a), .bool(let b)): order = a == b ? 0 : nil
        case (.null, .null): order = 0
        default: order = nil
        }
        switch op {
        case .equal: return order == 0
        case .notEqual: return order.map { $0 != 0 } ?? true
        case .less: return order.map { $0 < 0 } ?? false
        case .greater: return order.map { $0 > 0 } ?? false
        case .lessOrEqual: return order.map { $0 <= 0 } ?? false
        case .greaterOrEqual: return order.map { $0 >= 0 } ?? false
        }
    }

    enum Token: Equatable {
        /// An identifier or dotted path (`tags.location`), or a keyword.
        case word(String)
        case string(String)
        case number(JSONNumber)
        /// `*`, `(`, `)` or an operator.
        case symbol(String)
    }

    static func tokenize(_ text: String) throws(ParseError) -> [Token] {
        var tokens: [Token] = []
        let scalars = Array(text.unicodeScalars)
        var index = 0
        func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_$.-".unicodeScalars.contains(scalar)
        }
        while index < scalars.count {
            guard tokens.count <= Self.maximumTokens else {
                throw ParseError(description: "the query has more than \(Self.maximumTokens) tokens")
            }
            let scalar = scalars[index]
            if scalar.properties.isWhitespace {
                index += 1
            } else if scalar == "'" || scalar == "\"" {
                var end = index + 1
                var value = ""
                while end < scalars.count, scalars[end] != scalar {
                    value.unicodeScalars.append(scalars[end])
                    end += 1
                }
                guard end < scalars.count else { throw ParseError(description: "a string literal is not closed") }
                tokens.append(.string(value))
                index = end + 1
            } else if ("0"..."9").contains(scalar)
                || (scalar == "-" && index + 1 < scalars.count && ("0"..."9").contains(scalars[index + 1]))
            {
                var end = index + 1
                while end < scalars.count,
                    ("0"..."9").contains(scalars[end]) || ".eE+-".unicodeScalars.contains(scalars[end])
                {
                    end += 1
                }
                let text = String(String.UnicodeScalarView(scalars[index..<end]))
                guard let number = JSONNumber(text) else {
                    throw ParseError(description: "'\(text.prefix(32))' is not a number")
                }
                tokens.append(.number(number))
                index = end
            } else if scalar.properties.isAlphabetic || scalar == "_" || scalar == "$" {
                var end = index + 1
                while end < scalars.count, isWordScalar(scalars[end]) { end += 1 }
                tokens.append(.word(String(String.UnicodeScalarView(scalars[index..<end]))))
                index = end
            } else {
                let pair = index + 1 < scalars.count ? "\(scalar)\(scalars[index + 1])" : ""
                if ["!=", "<>", "<=", ">="].contains(pair) {
                    tokens.append(.symbol(pair == "<>" ? "!=" : pair))
                    index += 2
                } else if "*()=<>".unicodeScalars.contains(scalar) {
                    tokens.append(.symbol(String(scalar)))
                    index += 1
                } else {
                    throw ParseError(description: "unexpected character '\(scalar.escaped(asASCII: true))'")
                }
            }
        }
        return tokens
    }

    private struct Parser {
        var tokens: [Token]
        var position = 0

        var atEnd: Bool { self.position == self.tokens.count }

        mutating func next() -> Token? {
            guard self.position < self.tokens.count else { return nil }
            defer { self.position += 1 }
            return self.tokens[self.position]
        }

        mutating func take(_ token: Token) -> Bool {
            guard self.position < self.tokens.count, self.tokens[self.position] == token else { return false }
            self.position += 1
            return true
        }

        mutating func keyword(_ name: String) -> Bool {
            guard self.position < self.tokens.count, case .word(let word) = self.tokens[self.position],
                word.uppercased() == name
            else { return false }
            self.position += 1
            return true
        }

        mutating func expression(depth: Int) throws(ParseError) -> Condition {
            var left = try self.conjunction(depth: depth)
            while self.keyword("OR") { left = .or(left, try self.conjunction(depth: depth)) }
            return left
        }

        mutating func conjunction(depth: Int) throws(ParseError) -> Condition {
            var left = try self.unary(depth: depth)
            while self.keyword("AND") { left = .and(left, try self.unary(depth: depth)) }
            return left
        }

        mutating func unary(depth: Int) throws(ParseError) -> Condition {
            guard depth < TwinQuery.maximumNesting else {
                throw ParseError(description: "the query nests deeper than \(TwinQuery.maximumNesting)")
            }
            if self.keyword("NOT") { return .not(try self.unary(depth: depth + 1)) }
            if self.take(.symbol("(")) {
                let inner = try self.expression(depth: depth + 1)
                guard self.take(.symbol(")")) else { throw ParseError(description: "a '(' is not closed") }
                return inner
            }
            guard case .word(let path)? = self.next() else {
                throw ParseError(description: "a condition must start with a property path")
            }
            let segments = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !segments.contains(where: \.isEmpty) else {
                throw ParseError(description: "'\(path.prefix(64))' is not a property path")
            }
            guard case .symbol(let symbol)? = self.next(), let op = Operator(rawValue: symbol) else {
                throw ParseError(description: "'\(path.prefix(64))' must be followed by a comparison operator")
            }
            let value: JSONValue
            switch self.next() {
            case .string(let text)?: value = .string(text)
            case .number(let number)?: value = .number(number)
            case .word(let word)? where word.lowercased() == "true": value = .bool(true)
            case .word(let word)? where word.lowercased() == "false": value = .bool(false)
            case .word(let word)? where word.lowercased() == "null": value = .null
            default: throw ParseError(description: "a comparison needs a literal on its right")
            }
            return .comparison(path: segments, operator: op, value: value)
        }
    }
}
