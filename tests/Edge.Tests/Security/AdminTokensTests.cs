using Broker.AdminHttp.Security;

namespace Broker.Edge.Tests.Security;

public class AdminTokensTests
{
    [Fact]
    public void Added_tokens_authenticate_with_their_role_and_the_file_holds_no_secret()
    {
        var path = Path.Combine(Path.GetTempPath(), "tokens-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ops = AdminTokens.Add(path, "ops", AdminRole.Admin);
            var look = AdminTokens.Add(path, "look", AdminRole.Viewer);
            var tokens = AdminTokens.Load(path);

            Assert.Equal(AdminRole.Admin, tokens.Authenticate(ops));
            Assert.Equal(AdminRole.Viewer, tokens.Authenticate(look));
            Assert.Null(tokens.Authenticate(ops + "x"));
            Assert.Null(tokens.Authenticate("look." + ops[4..]));
            Assert.Null(tokens.Authenticate(""));
            Assert.Null(tokens.Authenticate("nodot"));
            var text = File.ReadAllText(path);
            Assert.DoesNotContain(ops[4..], text, StringComparison.Ordinal);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }

            // Adding a name again replaces its token; removing it ends it.
            var ops2 = AdminTokens.Add(path, "ops", AdminRole.Viewer);
            tokens = AdminTokens.Load(path);
            Assert.Null(tokens.Authenticate(ops));
            Assert.Equal(AdminRole.Viewer, tokens.Authenticate(ops2));
            Assert.True(AdminTokens.Remove(path, "ops"));
            Assert.False(AdminTokens.Remove(path, "ops"));
            Assert.Equal([("look", AdminRole.Viewer)], AdminTokens.Load(path).Entries);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("ops:admin")]
    [InlineData("ops:root:$sha256$m4yQpbqk+sBw6PJo8o0Pzgu9MFsbli0cE03s9z6rHGo=")]
    [InlineData("ops:admin:m4yQpbqk+sBw6PJo8o0Pzgu9MFsbli0cE03s9z6rHGo=")]
    [InlineData("o.ps:admin:$sha256$m4yQpbqk+sBw6PJo8o0Pzgu9MFsbli0cE03s9z6rHGo=")]
    [InlineData("ops:admin:$sha256$short")]
    public void A_malformed_line_is_an_error(string line) =>
        Assert.Throws<FormatException>(() => AdminTokens.Parse(line));

    [Theory]
    [InlineData("")]
    [InlineData("a.b")]
    [InlineData("a:b")]
    public void Token_names_are_plain(string name) =>
        Assert.Throws<ArgumentException>(() => AdminTokens.Add(Path.Combine(Path.GetTempPath(), "never-" + Guid.NewGuid().ToString("N")), name, AdminRole.Admin));
}
