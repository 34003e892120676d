using System.Text;
using Broker.AdminHttp.Security;
using Broker.Edge.Security;

namespace Broker.Edge.Tests.Security;

public class SecurityCommandsTests
{
    private static (int? Code, string Out, string Err) Run(string input, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = SecurityCommands.Run(args, new StringReader(input), output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Passwd_sets_from_stdin_prompts_twice_and_deletes()
    {
        var path = Path.Combine(Path.GetTempPath(), "pw-" + Guid.NewGuid().ToString("N"));
        try
        {
            Assert.Equal(0, Run("hunter2\n", "passwd", "--stdin", path, "bob").Code);
            Assert.True(PasswordFile.Load(path).Verify("bob", Encoding.UTF8.GetBytes("hunter2")));

            Assert.Equal(0, Run("one\none\n", "passwd", path, "amy").Code);
            var mismatch = Run("one\ntwo\n", "passwd", path, "amy");
            Assert.Equal(1, mismatch.Code);
            Assert.Contains("do not match", mismatch.Err, StringComparison.Ordinal);
            Assert.True(PasswordFile.Load(path).Verify("amy", Encoding.UTF8.GetBytes("one")));

            Assert.Equal(0, Run("", "passwd", "-D", path, "amy").Code);
            Assert.Equal(1, Run("", "passwd", "-D", path, "amy").Code);
            Assert.Equal(0, Run("x\n", "passwd", "-c", "--stdin", path, "new").Code);
            Assert.Equal(["new"], PasswordFile.Load(path).Users);
            Assert.Equal(1, Run("\n", "passwd", "--stdin", path, "empty").Code);
            Assert.Equal(2, Run("", "passwd", path).Code);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Token_add_prints_the_secret_once_list_and_remove()
    {
        var path = Path.Combine(Path.GetTempPath(), "tokens-" + Guid.NewGuid().ToString("N"));
        try
        {
            var added = Run("", "token", "add", "ci", "viewer", "--file", path);
            Assert.Equal(0, added.Code);
            Assert.Equal(AdminRole.Viewer, AdminTokens.Load(path).Authenticate(added.Out.Trim()));
            Assert.Equal("ci viewer", Run("", "token", "list", "--file", path).Out.Trim());
            Assert.Equal(2, Run("", "token", "add", "ci", "root", "--file", path).Code);
            Assert.Equal(0, Run("", "token", "remove", "ci", "--file", path).Code);
            Assert.Equal(1, Run("", "token", "remove", "ci", "--file", path).Code);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Other_arguments_start_a_node() => Assert.Null(Run("", "--urls").Code);
}
