using System.Globalization;
using System.Text;

namespace CovidFunctions.Deployment.Tests;

/// <summary>A node of an ARM template language expression (the text between "[" and "]").</summary>
internal abstract record ArmNode;

internal sealed record ArmString(string Value) : ArmNode;

internal sealed record ArmNumber(long Value) : ArmNode;

internal sealed record ArmCall(string Name, IReadOnlyList<ArmNode> Arguments) : ArmNode;

internal sealed record ArmMember(ArmNode Target, string Name) : ArmNode;

internal sealed record ArmIndex(ArmNode Target, ArmNode Index) : ArmNode;

/// <summary>
/// A small parser for ARM template expressions: function calls, 'strings' (with '' escapes), integers,
/// property access and indexers. Enough to read what Bicep emits, so tests can trace names and principals.
/// </summary>
internal sealed class ArmExpressionParser
{
    private readonly string _text;
    private int _pos;

    private ArmExpressionParser(string text) => _text = text;

    /// <summary>True when a JSON string value is an expression ("[...]" but not an escaped "[[").</summary>
    public static bool IsExpression(string value) =>
        value.Length >= 2 && value[0] == '[' && value[^1] == ']' && !value.StartsWith("[[", StringComparison.Ordinal);

    public static ArmNode Parse(string expression)
    {
        var inner = IsExpression(expression) ? expression[1..^1] : throw new FormatException("not an expression: " + expression);
        var parser = new ArmExpressionParser(inner);
        var node = parser.ParseNode();
        parser.SkipSpace();
        if (parser._pos != parser._text.Length)
        {
            throw new FormatException($"unexpected '{parser._text[parser._pos..]}' in {expression}");
        }

        return node;
    }

    private ArmNode ParseNode()
    {
        SkipSpace();
        ArmNode node = Peek() switch
        {
            '\'' => new ArmString(ReadString()),
            var c when char.IsAsciiDigit(c) || c == '-' => new ArmNumber(long.Parse(ReadWhile(ch => char.IsAsciiDigit(ch) || ch == '-'), CultureInfo.InvariantCulture)),
            _ => ParseCall(),
        };
        while (true)
        {
            SkipSpace();
            if (Peek() == '.')
            {
                _pos++;
                node = new ArmMember(node, ReadIdentifier());
            }
            else if (Peek() == '[')
            {
                _pos++;
                var index = ParseNode();
                Expect(']');
                node = new ArmIndex(node, index);
            }
            else
            {
                return node;
            }
        }
    }

    private ArmCall ParseCall()
    {
        var name = ReadIdentifier();
        Expect('(');
        var arguments = new List<ArmNode>();
        SkipSpace();
        if (Peek() == ')')
        {
            _pos++;
            return new ArmCall(name, arguments);
        }

        while (true)
        {
            arguments.Add(ParseNode());
            SkipSpace();
            var c = Next();
            if (c == ')')
            {
                return new ArmCall(name, arguments);
            }

            if (c != ',')
            {
                throw new FormatException($"expected ',' or ')' at {_pos} in {_text}");
            }
        }
    }

    private string ReadString()
    {
        Expect('\'');
        var sb = new StringBuilder();
        while (true)
        {
            var c = Next();
            if (c == '\'')
            {
                if (Peek() == '\'')
                {
                    _pos++;
                    sb.Append('\'');
                    continue;
                }

                return sb.ToString();
            }

            sb.Append(c);
        }
    }

    private string ReadIdentifier()
    {
        SkipSpace();
        var id = ReadWhile(c => char.IsAsciiLetterOrDigit(c) || c == '_' || c == '$');
        return id.Length > 0 ? id : throw new FormatException($"identifier expected at {_pos} in {_text}");
    }

    private string ReadWhile(Func<char, bool> predicate)
    {
        var start = _pos;
        while (_pos < _text.Length && predicate(_text[_pos]))
        {
            _pos++;
        }

        return _text[start.._pos];
    }

    private void Expect(char expected)
    {
        SkipSpace();
        if (Next() != expected)
        {
            throw new FormatException($"expected '{expected}' at {_pos} in {_text}");
        }
    }

    private void SkipSpace()
    {
        while (_pos < _text.Length && _text[_pos] == ' ')
        {
            _pos++;
        }
    }

    private char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

    private char Next() => _pos < _text.Length ? _text[_pos++] : throw new FormatException("unexpected end of " + _text);
}
