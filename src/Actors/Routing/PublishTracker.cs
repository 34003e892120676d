using System.Diagnostics.CodeAnalysis;

namespace Broker.Actors.Routing;

public enum TargetKind : byte
{
    Session = 1,
    RetainedStore = 2,
    Queue = 3,
}

/// <summary>
/// One destination of a routed publish: a session (by client ID), the retained store, or an AMQP queue (by name).
/// The kind is part of the key, so a client ID can never be mistaken for a queue or the store.
/// </summary>
public readonly record struct DeliveryTarget(TargetKind Kind, string Name)
{
    public static readonly DeliveryTarget RetainedStore = new(TargetKind.RetainedStore, "");

    public static DeliveryTarget Session(string clientId) => new(TargetKind.Session, clientId);

    public static DeliveryTarget Queue(string name) => new(TargetKind.Queue, name);

    public override string ToString() => Kind switch
    {
        TargetKind.Session => "session " + Name,
        TargetKind.Queue => "queue " + Name,
        _ => "retained store",
    };
}

/// <summary>
/// The publishes one connection has routed and waits on, MQTT or AMQP alike: which targets have not answered
/// yet and what was sent to each. Unanswered targets get the message again 3 s after it was sent, then 6, 12,
/// 24 and 30 s apart (sharding may drop a message while a shard moves; targets recognise a copy by its id); after
/// <see cref="MaxAttempts"/> sends the publish is given up and the caller answers its client negatively.
/// </summary>
/// <typeparam name="T">What the caller needs to answer its client (packet id, confirm sequence, ...).</typeparam>
public sealed class PublishTracker<T>
{
    public const long FirstRetryMs = 3000;
    public const long MaxRetryMs = 30000;

    /// <summary>Sends of one publish before it is given up: about 2.5 minutes in all.</summary>
    public const int MaxAttempts = 8;

    private readonly Dictionary<long, Entry> _entries = new();

    public sealed class Entry(T origin, Dictionary<DeliveryTarget, object> outstanding, long nextRetryAt)
    {
        public T Origin { get; } = origin;

        /// <summary>Each target still to answer, with what was sent to it.</summary>
        public Dictionary<DeliveryTarget, object> Outstanding { get; } = outstanding;

        public int Attempts { get; internal set; } = 1;

        public long NextRetryAt { get; internal set; } = nextRetryAt;

        /// <summary>A target answered that it refused the message (a full queue or retained store): the publish is answered negatively.</summary>
        public bool Refused { get; private set; }

        internal void MarkRefused() => Refused = true;
    }

    public int Count => _entries.Count;

    public IEnumerable<Entry> Entries => _entries.Values;

    /// <summary>Starts waiting for every target in <paramref name="outstanding"/>, which the tracker now owns.</summary>
    public void Track(long id, T origin, Dictionary<DeliveryTarget, object> outstanding, long nowMs) =>
        _entries[id] = new Entry(origin, outstanding, nowMs + FirstRetryMs);

    public bool TryGet(long id, [MaybeNullWhen(false)] out Entry entry) => _entries.TryGetValue(id, out entry);

    /// <summary>
    /// Records that <paramref name="target"/> answered publish <paramref name="id"/>, having taken the message or
    /// (<paramref name="refused"/>) not. True when it was the last one: the publish is done and no longer tracked.
    /// Answers to unknown ids or targets are ignored.
    /// </summary>
    public bool Answer(long id, DeliveryTarget target, [MaybeNullWhen(false)] out Entry done, bool refused = false)
    {
        done = null;
        if (!_entries.TryGetValue(id, out var entry) || !entry.Outstanding.Remove(target))
        {
            return false;
        }
        if (refused)
        {
            entry.MarkRefused();
        }
        if (entry.Outstanding.Count > 0)
        {
            return false;
        }
        _entries.Remove(id);
        done = entry;
        return true;
    }

    /// <summary>Stops tracking every publish whose origin matches (its channel closed, say): no answer will be given for them.</summary>
    public void RemoveWhere(Func<T, bool> match)
    {
        foreach (var (id, entry) in _entries)
        {
            if (match(entry.Origin))
            {
                _entries.Remove(id);
            }
        }
    }

    /// <summary>
    /// Sends again, through <paramref name="resend"/>, what is due at <paramref name="nowMs"/>. Publishes that
    /// have been sent <see cref="MaxAttempts"/> times are no longer tracked and are returned instead.
    /// </summary>
    public List<Entry>? Retry(long nowMs, Action<object> resend)
    {
        List<(long, Entry)>? givenUp = null;
        foreach (var (id, entry) in _entries)
        {
            if (nowMs < entry.NextRetryAt)
            {
                continue;
            }
            if (entry.Attempts >= MaxAttempts)
            {
                (givenUp ??= []).Add((id, entry));
                continue;
            }
            entry.NextRetryAt = nowMs + Math.Min(FirstRetryMs << entry.Attempts, MaxRetryMs);
            entry.Attempts++;
            foreach (var sent in entry.Outstanding.Values)
            {
                resend(sent);
            }
        }
        if (givenUp is null)
        {
            return null;
        }
        foreach (var (id, _) in givenUp)
        {
            _entries.Remove(id);
        }
        return [.. givenUp.Select(g => g.Item2)];
    }

    /// <summary>A member left: everything unanswered may have been on it, so all of it goes again now (not counted as an attempt).</summary>
    public void ResendAll(Action<object> resend)
    {
        foreach (var entry in _entries.Values)
        {
            foreach (var sent in entry.Outstanding.Values)
            {
                resend(sent);
            }
        }
    }
}
