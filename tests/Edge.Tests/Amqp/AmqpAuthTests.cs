using System.Buffers.Binary;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;

namespace Broker.Edge.Tests.Amqp;

public sealed class AmqpAuthTests
{
    [Fact]
    public void Plain_reads_user_and_password_and_ignores_the_authorization_identity() =>
        Assert.Equal(("alice", "s3cr"), AmqpAuth.ParsePlain("admin\0alice\0s3cr"u8.ToArray()));

    [Fact]
    public void Plain_without_two_separators_is_refused() => Assert.Null(AmqpAuth.ParsePlain("alice"u8.ToArray()));

    [Fact]
    public void Amqplain_reads_login_and_password_from_a_table_without_its_length()
    {
        var table = FieldTableCodec.Write(new FieldTable([new("LOGIN", "bob"u8.ToArray()), new("PASSWORD", "pw"u8.ToArray())]));
        Assert.Equal(table.Length - 4, (int)BinaryPrimitives.ReadUInt32BigEndian(table));
        Assert.Equal(("bob", "pw"), AmqpAuth.ParseAmqplain(table[4..]));
        Assert.Null(AmqpAuth.ParseAmqplain([1, 2, 3]));
    }

    [Fact]
    public void Users_are_checked_by_password_and_loopback_only_users_by_origin()
    {
        var users = AmqpUsers.Parse("guest:guest, svc:p:w", "guest");
        Assert.Null(users.Check("guest", "guest", fromLoopback: true));
        Assert.NotNull(users.Check("guest", "guest", fromLoopback: false));
        Assert.Null(users.Check("svc", "p:w", fromLoopback: false));
        Assert.NotNull(users.Check("svc", "p", fromLoopback: true));
        Assert.NotNull(users.Check("nobody", "", fromLoopback: true));
    }

    [Fact]
    public void A_user_entry_without_a_password_is_a_configuration_error() =>
        Assert.Throws<ArgumentException>(() => AmqpUsers.Parse("justaname", ""));
}
