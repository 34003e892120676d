using System.Buffers.Binary;
using System.Text.Unicode;

namespace Broker.Edge.Mqtt;

/// <summary>Why an inbound packet is refused: the MQTT 5 DISCONNECT reason code (3.1.1 only closes) and a log text.</summary>
public readonly record struct MqttViolation(byte ReasonCode, string Message);

/// <summary>
/// Checks an inbound packet's raw bytes for what MQTTnet's decoder lets through: it turns ill-formed UTF-8
/// into U+FFFD, ignores reserved flag and option bits, and reads an absent property as 0 (so a Topic Alias
/// of 0 looks like none). Runs before decoding, on the body after the fixed header. Every "MUST close the
/// Network Connection" of MQTT 3.1.1 §1.5.3, §2.2.2, §3.1.2, §3.3.1.2, §3.8.1, §3.8.3.1, §3.10.1 and their
/// MQTT 5 counterparts (§1.5.4, §2.1.3, §3.3.2.3.4, §3.8.3.1) that the decoder does not enforce is here.
/// </summary>
public static class MqttInputValidator
{
    public const byte MalformedPacket = 0x81;
    public const byte ProtocolError = 0x82;
    public const byte TopicAliasInvalid = 0x94;

    private const int Connect = 1, Publish = 3, PubAck = 4, PubRec = 5, PubRel = 6, PubComp = 7,
        Subscribe = 8, Unsubscribe = 10, Disconnect = 14;

    private const byte TopicAliasProperty = 0x23;
    private const byte SessionExpiryProperty = 0x11;
    private const byte SubscriptionIdentifierProperty = 0x0B;

    /// <summary>Null when the packet may be decoded; otherwise what to answer before closing.</summary>
    public static MqttViolation? Check(byte fixedHeader, ReadOnlySpan<byte> body, bool v5)
    {
        var type = fixedHeader >> 4;
        var flags = fixedHeader & 0x0F;
        // Fixed header flags (3.1.1 §2.2.2, 5.0 §2.1.3): PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0010, PUBLISH
        // its own, every other packet 0000; anything else is malformed.
        var expected = type is PubRel or Subscribe or Unsubscribe ? 0x02 : 0x00;
        if (type != Publish && flags != expected)
        {
            return Malformed($"packet type {type} with fixed header flags {flags:X1}");
        }
        var r = new Reader(body);
        return type switch
        {
            Connect => CheckConnect(ref r, v5),
            Publish => CheckPublish(ref r, flags, v5),
            PubAck or PubRec or PubRel or PubComp when v5 => CheckAck(ref r),
            Subscribe => CheckSubscribe(ref r, v5),
            Unsubscribe => CheckUnsubscribe(ref r, v5),
            Disconnect when v5 => CheckDisconnect(ref r, out _),
            _ => null,
        };
    }

    /// <summary>
    /// The Session Expiry Interval of an MQTT 5 DISCONNECT, or null when the packet has none (then the
    /// CONNECT's value stays). Call only for a DISCONNECT that passed <see cref="Check"/>.
    /// </summary>
    public static uint? DisconnectSessionExpiry(ReadOnlySpan<byte> body)
    {
        var r = new Reader(body);
        CheckDisconnect(ref r, out var found);
        return found.SessionExpiry;
    }

    /// <summary>
    /// A well-formed UTF-8 string of MQTT: no ill-formed sequences (overlong forms, encoded surrogates
    /// U+D800..U+DFFF, code points above U+10FFFF, truncated sequences) and no U+0000 (3.1.1 §1.5.3, 5.0 §1.5.4).
    /// </summary>
    public static bool IsWellFormedString(ReadOnlySpan<byte> utf8) => utf8.IndexOf((byte)0) < 0 && Utf8.IsValid(utf8);

    // ------------------------------------------------------------------ packets

    /// <summary>
    /// CONNECT: protocol name, level, flags, keep alive, [properties], client id,
    /// [will properties, will topic, will payload], [user name], [password].
    /// <code>
    /// flags: bit 7 user name | 6 password | 5 will retain | 4-3 will QoS | 2 will | 1 clean | 0 reserved
    /// </code>
    /// </summary>
    private static MqttViolation? CheckConnect(ref Reader r, bool v5)
    {
        if (!r.TryString(out _) || !r.TryByte(out _) || !r.TryByte(out var flags) || !r.TrySkip(2))
        {
            return Truncated("CONNECT");
        }
        var will = (flags & 0x04) != 0;
        var willQos = (flags >> 3) & 0x03;
        if ((flags & 0x01) != 0)
        {
            return Malformed("CONNECT reserved flag set");
        }
        if (willQos == 3 || (!will && (willQos != 0 || (flags & 0x20) != 0)))
        {
            return Malformed("CONNECT will QoS 3, or will QoS / retain without a will");
        }
        if (!v5 && (flags & 0xC0) == 0x40)
        {
            return Malformed("CONNECT password without user name");
        }
        if (v5 && ReadProperties(ref r, out _) is { } props)
        {
            return props;
        }
        if (ReadString(ref r, "client identifier") is { } id)
        {
            return id;
        }
        if (will)
        {
            if (v5 && ReadProperties(ref r, out _) is { } willProps)
            {
                return willProps;
            }
            if (ReadString(ref r, "will topic") is { } topic)
            {
                return topic;
            }
            if (!r.TryString(out _))
            {
                return Truncated("CONNECT will payload");
            }
        }
        if ((flags & 0x80) != 0 && ReadString(ref r, "user name") is { } user)
        {
            return user;
        }
        return null;
    }

    /// <summary>PUBLISH: topic name, packet id when QoS &gt; 0, [properties], payload (not checked: it is the application's).</summary>
    private static MqttViolation? CheckPublish(ref Reader r, int flags, bool v5)
    {
        var qos = (flags >> 1) & 0x03;
        if (qos == 3)
        {
            return Malformed("PUBLISH with QoS 3");
        }
        if (ReadString(ref r, "topic name") is { } topic)
        {
            return topic;
        }
        if (qos > 0 && !r.TrySkip(2))
        {
            return Truncated("PUBLISH");
        }
        if (!v5)
        {
            return null;
        }
        if (ReadProperties(ref r, out var found) is { } props)
        {
            return props;
        }
        return found.TopicAlias == 0 ? new MqttViolation(TopicAliasInvalid, "topic alias 0") : null;
    }

    /// <summary>MQTT 5 PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then reason code and properties, each optional.</summary>
    private static MqttViolation? CheckAck(ref Reader r)
    {
        if (!r.TrySkip(2))
        {
            return Truncated("acknowledgement");
        }
        return r.TryByte(out _) && !r.End ? ReadProperties(ref r, out _) : null;
    }

    /// <summary>
    /// SUBSCRIBE: packet id (non-zero, 3.1.1 §2.3.1), [properties], then per filter its string and an options byte.
    /// <code>
    /// options 3.1.1: bits 7-2 reserved (0)            | 1-0 QoS
    /// options 5.0:   bits 7-6 reserved | 5-4 retain handling | 3 RAP | 2 NL | 1-0 QoS
    /// </code>
    /// </summary>
    private static MqttViolation? CheckSubscribe(ref Reader r, bool v5)
    {
        if (!r.TryUInt16(out var packetId))
        {
            return Truncated("SUBSCRIBE");
        }
        if (packetId == 0)
        {
            return Malformed("SUBSCRIBE with packet identifier 0");
        }
        if (v5)
        {
            if (ReadProperties(ref r, out var found) is { } props)
            {
                return props;
            }
            if (found.SubscriptionIdentifier == 0)
            {
                return new MqttViolation(ProtocolError, "subscription identifier 0");
            }
        }
        while (!r.End)
        {
            if (ReadString(ref r, "topic filter") is { } filter)
            {
                return filter;
            }
            if (!r.TryByte(out var options))
            {
                return Truncated("SUBSCRIBE options");
            }
            if ((options & 0x03) == 3)
            {
                return Malformed("SUBSCRIBE requesting QoS 3");
            }
            if ((options & (v5 ? 0xC0 : 0xFC)) != 0)
            {
                return Malformed("SUBSCRIBE options with reserved bits set");
            }
            if (v5 && ((options >> 4) & 0x03) == 3)
            {
                return Malformed("SUBSCRIBE with retain handling 3");
            }
        }
        return null;
    }

    /// <summary>UNSUBSCRIBE: packet id (non-zero, 3.1.1 §2.3.1), [properties], topic filters.</summary>
    private static MqttViolation? CheckUnsubscribe(ref Reader r, bool v5)
    {
        if (!r.TryUInt16(out var packetId))
        {
            return Truncated("UNSUBSCRIBE");
        }
        if (packetId == 0)
        {
            return Malformed("UNSUBSCRIBE with packet identifier 0");
        }
        if (v5 && ReadProperties(ref r, out _) is { } props)
        {
            return props;
        }
        while (!r.End)
        {
            if (ReadString(ref r, "topic filter") is { } filter)
            {
                return filter;
            }
        }
        return null;
    }

    /// <summary>MQTT 5 DISCONNECT: reason code and properties, each optional.</summary>
    private static MqttViolation? CheckDisconnect(ref Reader r, out FoundProperties found)
    {
        found = default;
        return r.TryByte(out _) && !r.End ? ReadProperties(ref r, out found) : null;
    }

    // ------------------------------------------------------------------ fields

    private static MqttViolation? ReadString(ref Reader r, string what)
    {
        if (!r.TryString(out var s))
        {
            return Truncated(what);
        }
        return IsWellFormedString(s) ? null : Malformed($"{what} is not well-formed UTF-8 or holds U+0000");
    }

    /// <summary>The properties the packet checks look at, null when absent.</summary>
    private struct FoundProperties
    {
        public ushort? TopicAlias;
        public uint? SessionExpiry;
        public uint? SubscriptionIdentifier;
    }

    /// <summary>
    /// MQTT 5 properties (§2.2.2): a variable byte integer length, then identifier / value pairs. The value's
    /// type follows from the identifier; strings are checked like every other string.
    /// </summary>
    private static MqttViolation? ReadProperties(ref Reader r, out FoundProperties found)
    {
        found = default;
        if (!r.TryVariableInt(out var length) || !r.TrySlice((int)length, out var span))
        {
            return Truncated("properties");
        }
        var p = new Reader(span);
        while (!p.End)
        {
            if (!p.TryVariableInt(out var id))
            {
                return Truncated("property identifier");
            }
            var ok = id switch
            {
                0x01 or 0x17 or 0x19 or 0x24 or 0x25 or 0x28 or 0x29 or 0x2A => p.TrySkip(1),
                0x13 or 0x21 or 0x22 => p.TrySkip(2),
                TopicAliasProperty => p.TryUInt16(out var alias) && Found(ref found.TopicAlias, alias),
                0x02 or 0x18 or 0x27 => p.TrySkip(4),
                SessionExpiryProperty => p.TryUInt32(out var expiry) && Found(ref found.SessionExpiry, expiry),
                SubscriptionIdentifierProperty => p.TryVariableInt(out var subId) && Found(ref found.SubscriptionIdentifier, subId),
                0x09 or 0x16 => p.TryString(out _),
                0x03 or 0x08 or 0x12 or 0x15 or 0x1A or 0x1C or 0x1F => p.TryString(out var text) && IsWellFormedString(text),
                0x26 => p.TryString(out var name) && p.TryString(out var value) && IsWellFormedString(name) && IsWellFormedString(value),
                _ => false,
            };
            if (!ok)
            {
                return Malformed($"property 0x{id:X2} is unknown, truncated or not well-formed UTF-8");
            }
        }
        return null;
    }

    private static bool Found<T>(ref T? slot, T value) where T : struct
    {
        slot = value;
        return true;
    }

    private static MqttViolation Malformed(string message) => new(MalformedPacket, message);

    private static MqttViolation Truncated(string what) => new(MalformedPacket, $"{what} runs past the end of the packet");

    /// <summary>Big-endian reads over a packet body; each fails instead of reading past the end.</summary>
    private ref struct Reader(ReadOnlySpan<byte> span)
    {
        private ReadOnlySpan<byte> _rest = span;

        public readonly bool End => _rest.IsEmpty;

        public bool TryByte(out byte value)
        {
            value = 0;
            if (_rest.IsEmpty)
            {
                return false;
            }
            value = _rest[0];
            _rest = _rest[1..];
            return true;
        }

        public bool TrySkip(int count) => TrySlice(count, out _);

        public bool TrySlice(int count, out ReadOnlySpan<byte> slice)
        {
            slice = default;
            if (count < 0 || _rest.Length < count)
            {
                return false;
            }
            slice = _rest[..count];
            _rest = _rest[count..];
            return true;
        }

        public bool TryUInt16(out ushort value)
        {
            value = 0;
            if (!TrySlice(2, out var s))
            {
                return false;
            }
            value = BinaryPrimitives.ReadUInt16BigEndian(s);
            return true;
        }

        public bool TryUInt32(out uint value)
        {
            value = 0;
            if (!TrySlice(4, out var s))
            {
                return false;
            }
            value = BinaryPrimitives.ReadUInt32BigEndian(s);
            return true;
        }

        /// <summary>A 2-byte length, then that many bytes (strings and binary data alike).</summary>
        public bool TryString(out ReadOnlySpan<byte> value)
        {
            value = default;
            return TryUInt16(out var length) && TrySlice(length, out value);
        }

        /// <summary>7 bits per byte, least significant first, at most 4 bytes.</summary>
        public bool TryVariableInt(out uint value)
        {
            value = 0;
            for (var shift = 0; shift < 28; shift += 7)
            {
                if (!TryByte(out var b))
                {
                    return false;
                }
                value |= (uint)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return true;
                }
            }
            return false;
        }
    }
}
