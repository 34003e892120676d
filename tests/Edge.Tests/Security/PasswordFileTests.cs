using System.Text;
using Broker.Edge.Security;

namespace Broker.Edge.Tests.Security;

public class PasswordFileTests
{
    // Lines written by Debian's mosquitto_passwd 2.0.11 (`-b`, and `-H sha512` for the older form), password "pa ss:wörd".
    private const string Pbkdf2Line = "dave:$7$101$+3ndkiE3Jld+NgqT$Ts/I5K4O71n/u/Qhv9w1zb6gDw/260nmL+TEI1/LH5qbGk1Jy8bUMJH8sZ8UJGDr/wgoKa9q7U23Q7sgAtoRjQ==";
    private const string Sha512Line = "carol:$6$Z02nZ6JaRxFLiVDR$5MLsqWbWt6XXUQM4z0igN2RD4waGTRhFiGR1kUqidMdnbwTv8Aem3l4KYgsqeHURjlijnnppomf84nCyVEgpDw==";

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void Lines_made_by_mosquitto_passwd_verify_their_password_and_nothing_else()
    {
        var file = PasswordFile.Parse($"# users\n\n{Pbkdf2Line}\r\n{Sha512Line}\n");

        Assert.Equal(2, file.Count);
        Assert.True(file.Verify("dave", Utf8("pa ss:wörd")));
        Assert.True(file.Verify("carol", Utf8("pa ss:wörd")));
        Assert.False(file.Verify("dave", Utf8("pa ss:word")));
        Assert.False(file.Verify("dave", []));
        Assert.False(file.Verify("Dave", Utf8("pa ss:wörd")));
        Assert.False(file.Verify("nobody", Utf8("pa ss:wörd")));
    }

    [Fact]
    public void A_created_hash_has_mosquittos_form_and_verifies()
    {
        var hash = PasswordHash.Create("s3cret");

        Assert.Matches(@"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$", hash);
        Assert.True(PasswordHash.Verify(hash, Utf8("s3cret")));
        Assert.False(PasswordHash.Verify(hash, Utf8("s3cret ")));
        Assert.NotEqual(hash, PasswordHash.Create("s3cret"));
    }

    [Theory]
    [InlineData("alice")]
    [InlineData(":$7$101$AAAA$AAAA")]
    [InlineData("alice:plaintext")]
    [InlineData("alice:$7$0$+3ndkiE3Jld+NgqT$Ts/I5K4O71n/u/Qhv9w1zb6gDw/260nmL+TEI1/LH5qbGk1Jy8bUMJH8sZ8UJGDr/wgoKa9q7U23Q7sgAtoRjQ==")]
    [InlineData("alice:$7$2000000$+3ndkiE3Jld+NgqT$Ts/I5K4O71n/u/Qhv9w1zb6gDw/260nmL+TEI1/LH5qbGk1Jy8bUMJH8sZ8UJGDr/wgoKa9q7U23Q7sgAtoRjQ==")]
    [InlineData("alice:$7$101$+3ndkiE3Jld+NgqT$short")]
    [InlineData("alice:$7$101$not base64!$Ts/I5K4O71n/u/Qhv9w1zb6gDw/260nmL+TEI1/LH5qbGk1Jy8bUMJH8sZ8UJGDr/wgoKa9q7U23Q7sgAtoRjQ==")]
    public void A_malformed_line_is_an_error_naming_its_number(string line)
    {
        var ex = Assert.Throws<FormatException>(() => PasswordFile.Parse($"{Pbkdf2Line}\n{line}\n", "pw"));
        Assert.StartsWith("pw line 2:", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Update_sets_and_deletes_one_user_keeping_the_other_lines_and_the_file_private()
    {
        var path = Path.Combine(Path.GetTempPath(), "pw-" + Guid.NewGuid().ToString("N"));
        File.WriteAllText(path, $"# kept comment\n{Pbkdf2Line}\n");
        try
        {
            Assert.True(PasswordFile.Update(path, "erin", "one"));
            Assert.True(PasswordFile.Update(path, "erin", "two"));
            var file = PasswordFile.Load(path);
            Assert.True(file.Verify("erin", Utf8("two")));
            Assert.False(file.Verify("erin", Utf8("one")));
            Assert.True(file.Verify("dave", Utf8("pa ss:wörd")));
            Assert.StartsWith("# kept comment\n" + Pbkdf2Line + "\nerin:$7$101$", File.ReadAllText(path), StringComparison.Ordinal);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }

            Assert.True(PasswordFile.Update(path, "erin", null));
            Assert.False(PasswordFile.Update(path, "erin", null));
            Assert.Equal(["dave"], PasswordFile.Load(path).Users);
            Assert.Throws<ArgumentException>(() => PasswordFile.Update(path, "a:b", "x"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_changed_file_is_read_again_and_a_broken_one_keeps_the_previous_contents()
    {
        var path = Path.Combine(Path.GetTempPath(), "pw-" + Guid.NewGuid().ToString("N"));
        File.WriteAllText(path, Pbkdf2Line + "\n");
        var now = 0L;
        var reports = new List<string>();
        try
        {
            var file = new ReloadingFile<PasswordFile>(path, PasswordFile.Load, reports.Add, () => now);
            PasswordFile.Update(path, "erin", "one");
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(5));
            Assert.False(file.Current.Contains("erin"));   // looked at no more than once a second
            now += 1000;
            Assert.True(file.Current.Contains("erin"));

            File.WriteAllText(path, "garbage\n");
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(10));
            now += 1000;
            Assert.True(file.Current.Contains("erin"));
            Assert.Contains(reports, r => r.Contains("line 1", StringComparison.Ordinal) && r.Contains("previous contents stay", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
