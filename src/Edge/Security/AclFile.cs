using Broker.Actors.Routing;
using Broker.AdminHttp.Security;

namespace Broker.Edge.Security;

/// <summary>
/// Topic access rules in mosquitto's <c>acl_file</c> format:
/// <code>
///   topic [read|write|readwrite|deny] FILTER     before any user line: for anonymous clients; after one: for that user
///   user NAME                                    the topic lines below it are that user's
///   pattern [read|write|readwrite|deny] FILTER   for every client; %c = its client ID, %u = its user name
/// </code>
/// The access word may be left out (readwrite); '#' starts a comment line. With a file configured, what no line
/// grants is denied, and a deny line wins over every grant.
/// <para>
/// A publish needs a write rule whose filter matches its topic. A subscription needs a read rule whose filter admits
/// every topic the subscribed filter can match (<see cref="FilterRelation.Covers"/>): subscribing to '#' with only
/// <c>topic read sensors/#</c> is refused, where mosquitto grants it and filters every message; the client subscribes
/// to <c>sensors/#</c> instead. Each message delivered (live or retained) is checked again against the rules in force,
/// so deny lines inside a granted filter and a file changed since the subscription both hold.
/// </para>
/// <para>
/// A pattern whose %c or %u would put '/', '+' or '#' into the filter (a client ID such as "a/#") blocks the access
/// it would decide, so no client can widen a pattern with its own ID; a pattern with %u never applies to an anonymous
/// client.
/// </para>
/// </summary>
public sealed class AclFile
{
    [Flags]
    private enum Access : byte
    {
        Read = 1,
        Write = 2,
        Deny = 4,
    }

    private sealed record Rule(Access Access, string Filter);

    private readonly List<Rule> _anonymous;
    private readonly Dictionary<string, List<Rule>> _users;
    private readonly List<Rule> _patterns;

    private AclFile(List<Rule> anonymous, Dictionary<string, List<Rule>> users, List<Rule> patterns)
    {
        _anonymous = anonymous;
        _users = users;
        _patterns = patterns;
    }

    public static AclFile Load(string path) => Parse(File.ReadAllText(path), path);

    /// <summary>Parses the file's text; a line that is not a rule is an error naming its number.</summary>
    public static AclFile Parse(string text, string source = "ACL file")
    {
        var anonymous = new List<Rule>();
        var users = new Dictionary<string, List<Rule>>(StringComparer.Ordinal);
        var patterns = new List<Rule>();
        var current = anonymous;
        foreach (var (number, line) in ContentLines.Of(text))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var keyword = space < 0 ? line : line[..space];
            var rest = space < 0 ? "" : line[(space + 1)..].TrimStart();
            switch (keyword)
            {
                case "user":
                    if (rest.Length == 0)
                    {
                        throw new FormatException($"{source} line {number}: 'user' without a name");
                    }
                    if (!users.TryGetValue(rest, out current!))
                    {
                        users[rest] = current = [];
                    }
                    break;
                case "topic":
                    current.Add(ParseRule(rest, source, number));
                    break;
                case "pattern":
                    patterns.Add(ParseRule(rest, source, number));
                    break;
                default:
                    throw new FormatException($"{source} line {number}: expected 'topic', 'user' or 'pattern', not '{keyword}'");
            }
        }
        return new AclFile(anonymous, users, patterns);
    }

    private static Rule ParseRule(string rest, string source, int number)
    {
        var space = rest.IndexOf(' ', StringComparison.Ordinal);
        var word = space < 0 ? rest : rest[..space];
        Access? access = word switch
        {
            "read" => Access.Read,
            "write" => Access.Write,
            "readwrite" => Access.Read | Access.Write,
            "deny" => Access.Deny,
            _ => null,
        };
        var filter = access is null ? rest : rest[(space < 0 ? rest.Length : space + 1)..].TrimStart();
        if (filter.Length == 0)
        {
            throw new FormatException($"{source} line {number}: a rule without a topic filter");
        }
        var check = filter.Replace("%c", "c", StringComparison.Ordinal).Replace("%u", "u", StringComparison.Ordinal);
        if (!TopicFilter.IsValidFilter(check) || check.StartsWith(TopicFilter.SharePrefix, StringComparison.Ordinal))
        {
            throw new FormatException($"{source} line {number}: '{filter}' is not a topic filter");
        }
        return new Rule(access ?? (Access.Read | Access.Write), filter);
    }

    /// <summary>The rules that apply to one client, its patterns filled in: what a connection checks against.</summary>
    public ClientAcl For(string? user, string clientId)
    {
        var rules = new List<(bool Deny, bool Read, bool Write, string Filter)>();
        var blocked = (Access)0;
        foreach (var rule in user is null ? _anonymous : _users.GetValueOrDefault(user) ?? [])
        {
            rules.Add(Flatten(rule.Access, rule.Filter));
        }
        foreach (var pattern in _patterns)
        {
            var filter = pattern.Filter;
            if (filter.Contains("%u", StringComparison.Ordinal))
            {
                if (user is null)
                {
                    continue;
                }
                if (user.AsSpan().IndexOfAny('/', '+', '#') >= 0)
                {
                    blocked |= pattern.Access == Access.Deny ? Access.Read | Access.Write : pattern.Access;
                    continue;
                }
                filter = filter.Replace("%u", user, StringComparison.Ordinal);
            }
            if (filter.Contains("%c", StringComparison.Ordinal))
            {
                if (clientId.AsSpan().IndexOfAny('/', '+', '#') >= 0)
                {
                    blocked |= pattern.Access == Access.Deny ? Access.Read | Access.Write : pattern.Access;
                    continue;
                }
                filter = filter.Replace("%c", clientId, StringComparison.Ordinal);
            }
            rules.Add(Flatten(pattern.Access, filter));
        }
        return new ClientAcl(this, [.. rules], (blocked & Access.Read) != 0, (blocked & Access.Write) != 0);
    }

    private static (bool, bool, bool, string) Flatten(Access access, string filter) =>
        (access == Access.Deny, (access & Access.Read) != 0, (access & Access.Write) != 0, filter);
}

/// <summary>
/// The ACL rules of one client (its user's lines and the patterns with its client ID and user name filled in). A
/// pattern that could not be filled in safely blocks the access it grants or denies (<see cref="AclFile"/>).
/// </summary>
public sealed class ClientAcl
{
    private readonly (bool Deny, bool Read, bool Write, string Filter)[] _rules;
    private readonly bool _readBlocked;
    private readonly bool _writeBlocked;

    internal ClientAcl(AclFile source, (bool, bool, bool, string)[] rules, bool readBlocked, bool writeBlocked)
    {
        Source = source;
        _rules = rules;
        _readBlocked = readBlocked;
        _writeBlocked = writeBlocked;
    }

    /// <summary>The file version these rules come from: a connection asks for new ones when the file was read again.</summary>
    public AclFile Source { get; }

    /// <summary>A publish to <paramref name="topic"/> (also a will or a retained message): a write rule matches it and no deny rule does.</summary>
    public bool MayPublish(string topic) => !_writeBlocked && Decide(topic, write: true);

    /// <summary>A message on <paramref name="topic"/> may be delivered: a read rule matches it and no deny rule does.</summary>
    public bool MayReceive(string topic) => !_readBlocked && Decide(topic, write: false);

    /// <summary>
    /// A subscription to <paramref name="filter"/> (a shared one's filter without its prefix): a read rule admits every
    /// topic it can match and no deny rule admits all of them. Deny rules that cover part of it are applied to each
    /// message as it is delivered (<see cref="MayReceive"/>).
    /// </summary>
    public bool MaySubscribe(string filter)
    {
        if (_readBlocked)
        {
            return false;
        }
        if (TopicFilter.TryParseShared(filter, out _, out var inner))
        {
            filter = inner;
        }
        var granted = false;
        foreach (var (deny, read, _, rule) in _rules)
        {
            if (deny)
            {
                if (FilterRelation.Covers(rule, filter))
                {
                    return false;
                }
            }
            else if (read && !granted)
            {
                granted = FilterRelation.Covers(rule, filter);
            }
        }
        return granted;
    }

    private bool Decide(string topic, bool write)
    {
        var granted = false;
        foreach (var (deny, read, canWrite, rule) in _rules)
        {
            if (deny)
            {
                if (TopicFilter.Matches(rule, topic))
                {
                    return false;
                }
            }
            else if (!granted && (write ? canWrite : read))
            {
                granted = TopicFilter.Matches(rule, topic);
            }
        }
        return granted;
    }
}
