using System.Globalization;
using System.Text.Json.Nodes;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// A compiled ARM template (bicep build output) and its nested module deployments, with a symbolic evaluator
/// that follows parameters from a module up to main.bicep and variables to their values. What cannot be known
/// before deployment (unique strings, reference() results) becomes a canonical token, so two expressions that
/// name the same resource resolve to the same text.
/// </summary>
internal sealed class ArmTemplate
{
    private readonly JsonObject? _deployment;

    private ArmTemplate(JsonObject root, string name, ArmTemplate? parent, JsonObject? deployment)
    {
        Root = root;
        Name = name;
        Parent = parent;
        _deployment = deployment;
        Resources = root["resources"] is JsonArray array
            ? array.Select(r => r!.AsObject()).ToList()
            : throw new InvalidDataException($"{name}: resources is not an array (symbolic-name templates are not supported here)");
        Modules = Resources
            .Where(r => (string?)r["type"] == "Microsoft.Resources/deployments")
            .Select(r => new ArmTemplate(r["properties"]!["template"]!.AsObject(), LiteralName(r), this, r))
            .ToList();
    }

    public JsonObject Root { get; }

    /// <summary>"main" for the root template, else the module deployment name.</summary>
    public string Name { get; }

    public ArmTemplate? Parent { get; }

    /// <summary>The deployment resource in the parent template (null for main).</summary>
    public JsonObject? Deployment => _deployment;

    public IReadOnlyList<JsonObject> Resources { get; }

    public IReadOnlyList<ArmTemplate> Modules { get; }

    public static ArmTemplate Load(string path) =>
        new(JsonNode.Parse(File.ReadAllText(path))!.AsObject(), "main", null, null);

    public ArmTemplate Module(string name) =>
        Modules.SingleOrDefault(m => m.Name == name) ?? throw new KeyNotFoundException($"module {name} not in {Name}");

    public IEnumerable<ArmTemplate> SelfAndDescendants() => Modules.SelectMany(m => m.SelfAndDescendants()).Prepend(this);

    /// <summary>Every resource of this template and its modules, with the template that declares it.</summary>
    public IEnumerable<(ArmTemplate Template, JsonObject Resource)> AllResources() =>
        SelfAndDescendants().SelectMany(t => t.Resources.Select(r => (t, r)));

    public IEnumerable<JsonObject> ResourcesOfType(string type) =>
        Resources.Where(r => string.Equals((string?)r["type"], type, StringComparison.OrdinalIgnoreCase));

    /// <summary>Resolves a JSON value of this template to canonical text (a literal, or a token for what only deployment knows).</summary>
    public string Resolve(JsonNode? value) => Canon(ResolveNode(value));

    /// <summary>Resolves a JSON value; literal objects and arrays stay JSON.</summary>
    public Sym ResolveNode(JsonNode? value) => value switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) && ArmExpressionParser.IsExpression(s) => Evaluate(ArmExpressionParser.Parse(s)),
        JsonValue v when v.TryGetValue<string>(out var s) && s.StartsWith("[[", StringComparison.Ordinal) => Sym.Of(JsonValue.Create(s[1..])),
        _ => Sym.Of(value),
    };

    /// <summary>For a copy-loop resource, the resolved value of the array item each iteration's name indexes with copyIndex().</summary>
    public IReadOnlyList<string> CopyItems(JsonObject resource)
    {
        var name = (string?)resource["name"] ?? throw new InvalidDataException("resource without name");
        var loop = FindCopyIndexTarget(ArmExpressionParser.Parse(name)) ?? throw new InvalidDataException("no copyIndex() in " + name);
        var items = Evaluate(loop).Json as JsonArray ?? throw new InvalidDataException("copy loop over a non-literal array in " + name);
        return items.Select(Resolve).ToList();
    }

    private static ArmNode? FindCopyIndexTarget(ArmNode node) => node switch
    {
        ArmIndex { Index: ArmCall { Name: "copyIndex" } } index => index.Target,
        ArmIndex index => FindCopyIndexTarget(index.Target) ?? FindCopyIndexTarget(index.Index),
        ArmMember member => FindCopyIndexTarget(member.Target),
        ArmCall call => call.Arguments.Select(FindCopyIndexTarget).FirstOrDefault(n => n is not null),
        _ => null,
    };

    private static string LiteralName(JsonObject resource) =>
        (string?)resource["name"] is { } n && !ArmExpressionParser.IsExpression(n) ? n : throw new InvalidDataException("module deployments need literal names");

    private static string Canon(Sym sym) => sym.Token ?? sym.Json switch
    {
        null => "null",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var node => node.ToJsonString(),
    };

    private Sym Evaluate(ArmNode node)
    {
        switch (node)
        {
            case ArmString s:
                return Sym.Of(JsonValue.Create(s.Value));
            case ArmNumber n:
                return Sym.Of(JsonValue.Create(n.Value));
            case ArmMember m:
                {
                    var target = Evaluate(m.Target);
                    return target.Json is JsonObject obj && obj.ContainsKey(m.Name)
                        ? ResolveNode(obj[m.Name])
                        : Sym.OfToken(Canon(target) + "." + m.Name);
                }

            case ArmIndex i:
                {
                    var target = Evaluate(i.Target);
                    var index = Canon(Evaluate(i.Index));
                    return target.Json is JsonObject obj && obj.ContainsKey(index)
                        ? ResolveNode(obj[index])
                        : Sym.OfToken($"{Canon(target)}[{index}]");
                }

            case ArmCall call:
                return EvaluateCall(call);
            default:
                throw new InvalidOperationException("unknown node " + node);
        }
    }

    private Sym EvaluateCall(ArmCall call)
    {
        string Arg(int i) => Canon(Evaluate(call.Arguments[i]));
        switch (call.Name.ToLowerInvariant())
        {
            case "parameters":
                return ResolveParameter(Arg(0));
            case "variables":
                {
                    var name = Arg(0);
                    var variables = Root["variables"]?.AsObject() ?? throw new KeyNotFoundException($"{Name} has no variables");
                    return variables.ContainsKey(name) ? ResolveNode(variables[name]) : throw new KeyNotFoundException($"variable {name} not in {Name}");
                }

            case "resourceid":
            case "subscriptionresourceid":
            case "tenantresourceid":
            case "extensionresourceid":
                {
                    var args = call.Arguments.Select(a => Canon(Evaluate(a))).ToList();
                    var typeIndex = args.FindIndex(a => a.Contains('/', StringComparison.Ordinal) && a.StartsWith("Microsoft.", StringComparison.OrdinalIgnoreCase));
                    return typeIndex < 0
                        ? Sym.OfToken($"{call.Name}({string.Join(", ", args)})")
                        : Sym.OfToken($"{args[typeIndex]}({string.Join('/', args.Skip(typeIndex + 1))})");
                }

            case "format":
                {
                    var args = call.Arguments.Skip(1).Select(Evaluate).ToList();
                    var text = string.Format(CultureInfo.InvariantCulture, Arg(0), args.Select(a => (object)Canon(a)).ToArray());
                    return args.All(a => a.Token is null) ? Sym.Of(JsonValue.Create(text)) : Sym.OfToken(text);
                }

            case "reference":
                return Sym.OfToken($"reference({Arg(0)})");
            default:
                return Sym.OfToken($"{call.Name}({string.Join(", ", call.Arguments.Select(a => Canon(Evaluate(a))))})");
        }
    }

    private Sym ResolveParameter(string name)
    {
        if (_deployment?["properties"]?["parameters"]?[name] is JsonObject passed)
        {
            return Parent!.ResolveNode(passed["value"]);
        }

        // A conditional module parameter (cond ? a : b) compiles to one expression choosing between
        // createObject('value', a) and createObject('value', b); read as if(cond, a, b).
        if (_deployment?["properties"]?["parameters"]?[name] is JsonValue chosen && chosen.TryGetValue<string>(out var expression) && ArmExpressionParser.IsExpression(expression))
        {
            return Parent!.Evaluate(UnwrapParameterValue(ArmExpressionParser.Parse(expression)));
        }

        var declared = Root["parameters"]?[name] ?? throw new KeyNotFoundException($"parameter {name} not declared in {Name}");
        if (Parent is null)
        {
            // A main.bicep parameter: its value is chosen at deployment time.
            return Sym.OfToken("param:" + name);
        }

        return declared["defaultValue"] is { } fallback ? ResolveNode(fallback) : Sym.OfToken($"param:{Name}.{name}");
    }

    private static ArmNode UnwrapParameterValue(ArmNode node) => node switch
    {
        ArmCall { Name: "createObject", Arguments: [ArmString { Value: "value" }, var value] } => value,
        ArmCall { Name: "if", Arguments: [var condition, var whenTrue, var whenFalse] } =>
            new ArmCall("if", [condition, UnwrapParameterValue(whenTrue), UnwrapParameterValue(whenFalse)]),
        _ => throw new InvalidDataException("a module parameter expression that is not createObject('value', ...) or if(...) of them"),
    };

    /// <summary>A symbolic value: literal JSON, or a canonical token for a value known only at deployment.</summary>
    internal sealed record Sym(JsonNode? Json, string? Token)
    {
        public static Sym Of(JsonNode? json) => new(json, null);

        public static Sym OfToken(string token) => new(null, token);
    }
}
