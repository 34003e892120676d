using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;

namespace Broker.Edge.Tests.Amqp;

public class AmqpMethodErrorTests
{
    [Theory]
    [InlineData(30, 10)]  // access.request: gone from 0.9.1 as RabbitMQ speaks it
    [InlineData(60, 200)]
    [InlineData(0, 0)]
    [InlineData(65535, 65535)]
    public void An_unknown_class_or_method_is_540_not_implemented(int classId, int methodId)
    {
        byte[] payload = [(byte)(classId >> 8), (byte)classId, (byte)(methodId >> 8), (byte)methodId, 0x00];

        var error = Assert.Throws<AmqpFormatException>(() => AmqpMethodCodec.Decode(payload));

        Assert.Equal(AmqpReplyCode.NotImplemented, error.ReplyCode);
        Assert.Equal(classId, error.ClassId);
        Assert.Equal(methodId, error.MethodId);
    }

    [Fact]
    public void A_payload_too_short_for_the_ids_is_a_syntax_error()
    {
        Assert.Equal(AmqpReplyCode.SyntaxError, Assert.Throws<AmqpFormatException>(() => AmqpMethodCodec.Decode([0x00, 0x3C, 0x00])).ReplyCode);
        Assert.Equal(AmqpReplyCode.SyntaxError, Assert.Throws<AmqpFormatException>(() => AmqpMethodCodec.Decode(ReadOnlySpan<byte>.Empty)).ReplyCode);
    }

    [Fact]
    public void Every_truncation_of_every_method_is_a_syntax_error_naming_the_method()
    {
        foreach (var method in AmqpMethodSamples.All)
        {
            var payload = AmqpMethodCodec.Encode(method);
            for (var length = 4; length < payload.Length; length++)
            {
                var cut = payload[..length];
                var error = Assert.Throws<AmqpFormatException>(() => AmqpMethodCodec.Decode(cut));
                Assert.Equal(AmqpReplyCode.SyntaxError, error.ReplyCode);
                Assert.Equal(method.ClassId, error.ClassId);
                Assert.Equal(method.MethodId, error.MethodId);
            }
        }
    }

    [Fact]
    public void Bytes_after_the_last_argument_are_a_syntax_error()
    {
        foreach (var method in AmqpMethodSamples.All)
        {
            byte[] payload = [.. AmqpMethodCodec.Encode(method), 0x00];
            var error = Assert.Throws<AmqpFormatException>(() => AmqpMethodCodec.Decode(payload));
            Assert.Equal(AmqpReplyCode.SyntaxError, error.ReplyCode);
        }
    }

    [Fact]
    public void A_short_string_that_is_not_UTF8_is_a_syntax_error()
    {
        // basic.consume-ok with consumer-tag 0xC3 0x28 (a broken two-byte sequence).
        byte[] payload = [0x00, 0x3C, 0x00, 0x15, 0x02, 0xC3, 0x28];

        Assert.Equal(AmqpReplyCode.SyntaxError, Assert.Throws<AmqpFormatException>(() => AmqpMethodCodec.Decode(payload)).ReplyCode);
    }

    [Fact]
    public void Random_payloads_only_ever_throw_AmqpFormatException()
    {
        var random = new Random(20261126);
        var known = AmqpMethodSamples.All.Select(AmqpMethodCodec.Encode).ToArray();
        var decoded = 0;
        for (var i = 0; i < 20_000; i++)
        {
            byte[] payload;
            switch (i % 3)
            {
                case 0:
                    // Anything at all.
                    payload = new byte[random.Next(0, 40)];
                    random.NextBytes(payload);
                    break;
                case 1:
                    // A known class and method with random arguments.
                    var arguments = new byte[random.Next(0, 40)];
                    random.NextBytes(arguments);
                    payload = [.. known[random.Next(known.Length)].AsSpan(0, 4), .. arguments];
                    break;
                default:
                    // A valid method with a few bytes changed.
                    payload = (byte[])known[random.Next(known.Length)].Clone();
                    for (var flips = random.Next(1, 4); flips > 0; flips--)
                    {
                        payload[random.Next(payload.Length)] = (byte)random.Next(256);
                    }
                    break;
            }
            try
            {
                var method = AmqpMethodCodec.Decode(payload);
                decoded++;
                Assert.Equal(method, AmqpMethodCodec.Decode(AmqpMethodCodec.Encode(method)));
            }
            catch (AmqpFormatException e)
            {
                Assert.True(e.ReplyCode is AmqpReplyCode.SyntaxError or AmqpReplyCode.NotImplemented, e.Message);
            }
        }
        // The mutations must also produce valid methods now and then, or this would only test the error path.
        Assert.True(decoded > 100, $"only {decoded} payloads decoded");
    }
}
