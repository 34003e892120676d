using Broker.Edge.Mqtt;

namespace Broker.Edge.Tests.Mqtt;

public class MqttInputValidatorTests
{
    private static byte? Reason(byte header, byte[] body, bool v5) => MqttInputValidator.Check(header, body, v5)?.ReasonCode;

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 0x61, 0x2F, 0x62 })]                // "a/b"
    [InlineData(new byte[] { 0xC3, 0xA9 })]                      // é
    [InlineData(new byte[] { 0xEF, 0xBF, 0xBD })]                // U+FFFD itself is a character like any other
    [InlineData(new byte[] { 0xEF, 0xBB, 0xBF, 0x61 })]          // a BOM is kept, not refused (3.1.1 §1.5.3)
    [InlineData(new byte[] { 0xF0, 0x9F, 0x98, 0x80 })]          // U+1F600, 4 bytes
    public void Well_formed_strings_pass(byte[] utf8) => Assert.True(MqttInputValidator.IsWellFormedString(utf8));

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFE })]                      // bytes that never occur in UTF-8
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]                // encoded surrogate U+D800
    [InlineData(new byte[] { 0xED, 0xBF, 0xBF })]                // encoded surrogate U+DFFF
    [InlineData(new byte[] { 0xC0, 0x80 })]                      // overlong U+0000
    [InlineData(new byte[] { 0xE0, 0x80, 0xAF })]                // overlong "/"
    [InlineData(new byte[] { 0x61, 0x00 })]                      // U+0000
    [InlineData(new byte[] { 0xE2, 0x82 })]                      // truncated sequence
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })]          // above U+10FFFF
    [InlineData(new byte[] { 0x80 })]                            // lone continuation byte
    public void Ill_formed_strings_and_nul_fail(byte[] utf8) => Assert.False(MqttInputValidator.IsWellFormedString(utf8));

    // ------------------------------------------------------------------ fixed header flags

    [Theory]
    [InlineData(0x62, true)]    // PUBREL 0010
    [InlineData(0x60, false)]
    [InlineData(0x82, true)]    // SUBSCRIBE 0010
    [InlineData(0x80, false)]
    [InlineData(0x83, false)]
    [InlineData(0xA2, true)]    // UNSUBSCRIBE 0010
    [InlineData(0xA0, false)]
    [InlineData(0x40, true)]    // PUBACK 0000
    [InlineData(0x41, false)]
    [InlineData(0x50, true)]    // PUBREC
    [InlineData(0x58, false)]
    [InlineData(0x70, true)]    // PUBCOMP
    [InlineData(0x74, false)]
    [InlineData(0xC0, true)]    // PINGREQ
    [InlineData(0xC1, false)]
    [InlineData(0xE0, true)]    // DISCONNECT
    [InlineData(0xE2, false)]
    public void Fixed_header_flags_must_be_the_reserved_values(byte header, bool valid)
    {
        // Bodies that are valid for each type in both versions: packet id 1 (PUBREL/acks), one filter "t" (SUBSCRIBE/UNSUBSCRIBE).
        byte[] body = (header >> 4) switch
        {
            8 => [0x00, 0x01, 0x00, 0x01, 0x74, 0x00],
            10 => [0x00, 0x01, 0x00, 0x01, 0x74],
            12 or 14 => [],
            _ => [0x00, 0x01],
        };
        Assert.Equal(valid ? null : (byte)0x81, Reason(header, body, v5: false));
    }

    // ------------------------------------------------------------------ PUBLISH

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Publish_with_qos_3_is_malformed(bool v5) =>
        Assert.Equal((byte)0x81, Reason(0x36, [0x00, 0x01, 0x74, 0x00, 0x01, 0x00], v5));

    [Fact]
    public void Publish_qos_1_with_a_valid_topic_passes()
    {
        Assert.Null(Reason(0x32, [0x00, 0x01, 0x74, 0x00, 0x01, 0x78], v5: false));          // topic "t", packet id 1, payload "x"
        Assert.Null(Reason(0x3B, [0x00, 0x01, 0x74, 0x00, 0x01, 0x00, 0x78], v5: true));     // QoS 1, DUP, retain, properties 0
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Publish_topic_with_an_encoded_surrogate_is_malformed(bool v5) =>
        Assert.Equal((byte)0x81, Reason(0x30, [0x00, 0x03, 0xED, 0xA0, 0x80, .. (v5 ? new byte[] { 0x00 } : [])], v5));

    [Fact]
    public void Publish_whose_topic_runs_past_the_packet_is_malformed() =>
        Assert.Equal((byte)0x81, Reason(0x30, [0x00, 0x09, 0x61], v5: false));

    [Fact]
    public void Payload_bytes_are_not_checked_as_text() =>
        Assert.Null(Reason(0x30, [0x00, 0x01, 0x74, 0xFF, 0xFE, 0x00], v5: false));

    [Theory]
    [InlineData(0, 0x94)]      // Topic Alias 0: Topic Alias invalid
    [InlineData(1, null)]
    public void Mqtt5_topic_alias_0_is_refused(ushort alias, int? expected) =>
        Assert.Equal((byte?)expected, Reason(0x30, [0x00, 0x01, 0x74, 0x03, 0x23, (byte)(alias >> 8), (byte)alias], v5: true));

    [Theory]
    [InlineData(new byte[] { 0x07, 0x26, 0x00, 0x01, 0x6B, 0x00, 0x01, 0x00 })]              // user property value U+0000
    [InlineData(new byte[] { 0x08, 0x26, 0x00, 0x02, 0xED, 0xA0, 0x00, 0x01, 0x76 })]        // user property name cut surrogate
    [InlineData(new byte[] { 0x04, 0x03, 0x00, 0x01, 0xFF })]                                // content type 0xFF
    [InlineData(new byte[] { 0x04, 0x08, 0x00, 0x01, 0xC0 })]                                // response topic truncated sequence
    [InlineData(new byte[] { 0x02, 0x7F, 0x00 })]                                            // unknown property identifier
    [InlineData(new byte[] { 0x05, 0x02, 0x00, 0x00 })]                                      // message expiry cut short
    [InlineData(new byte[] { 0x09, 0x01, 0x00 })]                                            // properties longer than the packet
    public void Mqtt5_publish_properties_are_checked(byte[] properties) =>
        Assert.Equal((byte)0x81, Reason(0x30, [0x00, 0x01, 0x74, .. properties], v5: true));

    [Fact]
    public void Mqtt5_publish_with_well_formed_properties_passes() =>
        // Payload format 1, message expiry 10, content type "a", correlation data FF (binary: not text), user property k=v.
        Assert.Null(Reason(0x30, [0x00, 0x01, 0x74, 0x16, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x01, 0x61,
            0x09, 0x00, 0x01, 0xFF, 0x26, 0x00, 0x01, 0x6B, 0x00, 0x01, 0x76, 0x78], v5: true));

    // ------------------------------------------------------------------ SUBSCRIBE / UNSUBSCRIBE

    [Theory]
    [InlineData(false, 0x02, null)]
    [InlineData(false, 0x03, 0x81)]   // QoS 3
    [InlineData(false, 0x04, 0x81)]   // 3.1.1 reserved bit
    [InlineData(false, 0x80, 0x81)]
    [InlineData(true, 0x2E, null)]    // retain handling 2, RAP, NL, QoS 2
    [InlineData(true, 0x03, 0x81)]    // QoS 3
    [InlineData(true, 0x30, 0x81)]    // retain handling 3
    [InlineData(true, 0x40, 0x81)]    // 5.0 reserved bit 6
    [InlineData(true, 0x80, 0x81)]    // 5.0 reserved bit 7
    public void Subscribe_options_are_checked(bool v5, byte options, int? expected)
    {
        byte[] body = v5 ? [0x00, 0x01, 0x00, 0x00, 0x01, 0x74, options] : [0x00, 0x01, 0x00, 0x01, 0x74, options];
        Assert.Equal((byte?)expected, Reason(0x82, body, v5));
    }

    [Fact]
    public void Subscribe_checks_every_filter_not_only_the_first() =>
        Assert.Equal((byte)0x81, Reason(0x82, [0x00, 0x01, 0x00, 0x01, 0x61, 0x00, 0x00, 0x02, 0x61, 0x00, 0x01], v5: false));

    [Theory]
    [InlineData(0x82, false, new byte[] { 0x00, 0x00, 0x00, 0x01, 0x74, 0x00 })]          // SUBSCRIBE
    [InlineData(0x82, true, new byte[] { 0x00, 0x00, 0x00, 0x00, 0x01, 0x74, 0x00 })]
    [InlineData(0xA2, false, new byte[] { 0x00, 0x00, 0x00, 0x01, 0x74 })]                // UNSUBSCRIBE
    [InlineData(0xA2, true, new byte[] { 0x00, 0x00, 0x00, 0x00, 0x01, 0x74 })]
    public void Subscribe_and_unsubscribe_with_packet_identifier_0_are_malformed(byte header, bool v5, byte[] body) =>
        Assert.Equal((byte)0x81, Reason(header, body, v5));

    [Fact]
    public void Subscribe_whose_options_byte_is_missing_is_malformed() =>
        Assert.Equal((byte)0x81, Reason(0x82, [0x00, 0x01, 0x00, 0x01, 0x74], v5: false));

    [Fact]
    public void Mqtt5_subscription_identifier_0_is_a_protocol_error()
    {
        Assert.Equal((byte)0x82, Reason(0x82, [0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 0x74, 0x00], v5: true));
        Assert.Null(Reason(0x82, [0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, 0x74, 0x00], v5: true));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Unsubscribe_filter_that_is_not_well_formed_utf8_is_malformed(bool v5)
    {
        byte[] head = v5 ? [0x00, 0x01, 0x00] : [0x00, 0x01];
        Assert.Null(Reason(0xA2, [.. head, 0x00, 0x01, 0x74], v5));
        Assert.Equal((byte)0x81, Reason(0xA2, [.. head, 0x00, 0x01, 0x74, 0x00, 0x02, 0xFF, 0xFE], v5));
    }

    // ------------------------------------------------------------------ CONNECT

    /// <summary>CONNECT body: "MQTT", level, flags, keep alive 60, [properties 0], client id "c", then <paramref name="rest"/>.</summary>
    private static byte[] ConnectBody(byte level, byte flags, byte[] clientId, params byte[] rest) =>
        [0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, level, flags, 0x00, 0x3C, .. (level == 5 ? new byte[] { 0x00 } : []),
            (byte)(clientId.Length >> 8), (byte)clientId.Length, .. clientId, .. rest];

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public void Connect_strings_are_checked(byte level)
    {
        var v5 = level == 5;
        Assert.Null(Reason(0x10, ConnectBody(level, 0x02, "c"u8.ToArray()), v5));
        Assert.Equal((byte)0x81, Reason(0x10, ConnectBody(level, 0x02, [0xED, 0xA0, 0x80]), v5));
        // Will flag: [will properties], will topic with U+0000, will payload.
        byte[] willProps = v5 ? [0x00] : [];
        Assert.Equal((byte)0x81, Reason(0x10, ConnectBody(level, 0x06, "c"u8.ToArray(), [.. willProps, 0x00, 0x02, 0x61, 0x00, 0x00, 0x00]), v5));
        Assert.Null(Reason(0x10, ConnectBody(level, 0x06, "c"u8.ToArray(), [.. willProps, 0x00, 0x01, 0x61, 0x00, 0x00]), v5));
        // User name flag with an ill-formed user name.
        Assert.Equal((byte)0x81, Reason(0x10, ConnectBody(level, 0x82, "c"u8.ToArray(), 0x00, 0x01, 0xFF), v5));
    }

    [Theory]
    [InlineData(0x03)]   // reserved bit 0
    [InlineData(0x1E)]   // will QoS 3
    [InlineData(0x0A)]   // will QoS 1 without a will
    [InlineData(0x22)]   // will retain without a will
    public void Connect_flags_are_checked(byte flags) =>
        Assert.Equal((byte)0x81, Reason(0x10, ConnectBody(4, flags, "c"u8.ToArray(), 0x00, 0x01, 0x74, 0x00, 0x00), v5: false));

    [Fact]
    public void Mqtt311_password_without_user_name_is_malformed_but_mqtt5_allows_it()
    {
        Assert.Equal((byte)0x81, Reason(0x10, ConnectBody(4, 0x42, "c"u8.ToArray(), 0x00, 0x01, 0x70), v5: false));
        Assert.Null(Reason(0x10, ConnectBody(5, 0x42, "c"u8.ToArray(), 0x00, 0x01, 0x70), v5: true));
    }

    // ------------------------------------------------------------------ DISCONNECT

    [Theory]
    [InlineData(new byte[] { }, null)]                                                  // no reason code, no properties
    [InlineData(new byte[] { 0x00 }, null)]                                             // reason code only
    [InlineData(new byte[] { 0x00, 0x00 }, null)]                                       // empty properties
    [InlineData(new byte[] { 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00 }, 0u)]            // Session Expiry Interval 0: present
    [InlineData(new byte[] { 0x04, 0x05, 0x11, 0x00, 0x00, 0x00, 0x3C }, 60u)]
    public void Disconnect_session_expiry_is_told_apart_from_an_absent_one(byte[] body, uint? expected)
    {
        Assert.Null(Reason(0xE0, body, v5: true));
        Assert.Equal(expected, MqttInputValidator.DisconnectSessionExpiry(body));
    }

    [Fact]
    public void Disconnect_with_an_ill_formed_reason_string_is_malformed() =>
        Assert.Equal((byte)0x81, Reason(0xE0, [0x00, 0x04, 0x1F, 0x00, 0x01, 0xFF], v5: true));
}
