namespace Broker.Actors.Tests;

/// <summary>The source tree the tests were built from (for tests that read or rewrite files in it).</summary>
internal static class Repository
{
    public static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cluster.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("no Cluster.sln above " + AppContext.BaseDirectory);
    }
}
