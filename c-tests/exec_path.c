/* execve, execv, execvp and execvpe as glibc makes them (the shim exports them and makes the
 * execve calls itself): execvp's PATH search in order, going on past ENOENT, ENOTDIR and EACCES
 * (reported when nothing ran), an empty entry for the current directory, /bin:/usr/bin without
 * PATH, a name with a '/' as it is, an empty name, a file the kernel cannot execute run by
 * /bin/sh (argv[0] replaced by its path), and the caller's PATH with execvpe's own environment.
 * Each case runs in a child whose exec failure comes back through a close-on-exec pipe. */
#include "common.h"

extern char **environ;

/* Runs `how` in a child and prints what became of it: the errno its exec failed with, or the
 * exit status of what it ran (whose output comes first). */
static void run(const char *name, void (*how)(void))
{
	int st[2];
	if (pipe2(st, O_CLOEXEC))
		die("pipe2");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(st[0]);
		how();
		int e = errno;
		if (write(st[1], &e, sizeof e) != sizeof e)
			_exit(SETUP_FAIL);
		_exit(0);
	}
	close(st[1]);
	int e = 0;
	ssize_t n = read(st[0], &e, sizeof e);
	close(st[0]);
	int status;
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	if (n == sizeof e)
		printf("%s: failed %s\n", name, errname(e));
	else
		printf("%s: ran, exit %d\n", name, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static char *const prog_argv[] = {"prog", "one", "two", NULL};

static void search(const char *path)
{
	if (path)
		setenv("PATH", path, 1);
	else
		unsetenv("PATH");
	execvp("prog", prog_argv);
}

static void missing(void) { search("d1:nowhere"); }
static void denied(void) { search("d1:d2"); }
static void denied_then_found(void) { search("d2:d4"); }
static void script(void) { search("d1:d3"); }
static void found(void) { search("d1:d4"); }
static void not_a_dir(void) { search("file:d4"); }
static void current_dir(void) { search("d1:"); }
static void empty_path(void) { search(""); }

static void no_path(void)
{
	char *const argv[] = {"sh", "-c", "echo no PATH: sh found", NULL};
	unsetenv("PATH");
	execvp("sh", argv);
}

static void slash(void) { execvp("./d4/prog", prog_argv); }
static void slash_denied(void) { execvp("d2/prog", prog_argv); }
static void slash_script(void) { execvp("d3/prog", prog_argv); }
static void empty_name(void) { execvp("", prog_argv); }

static void own_env(void)
{
	char *const argv[] = {"show", "FOO", NULL};
	char *const envp[] = {"FOO=from execvpe", NULL};
	setenv("PATH", "d1:d4", 1);
	execvpe("show", argv, envp);
}

static void exec_v(void) { execv("d4/prog", prog_argv); }
static void exec_v_missing(void) { execv("d1/prog", prog_argv); }

static void exec_ve(void)
{
	char *const argv[] = {"show", "FOO", NULL};
	char *const envp[] = {"FOO=from execve", NULL};
	execve("d4/show", argv, envp);
}

static void exec_ve_script(void) { execve("d3/prog", prog_argv, environ); }

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd))
		die(path);
}

int main(void)
{
	setup();
	/* A directory of its own: the same working directory may serve several runs. */
	char dir[] = "exec_path.XXXXXX";
	if (!mkdtemp(dir) || chdir(dir))
		die("mkdtemp");
	if (mkdir("d1", 0755) || mkdir("d2", 0755) || mkdir("d3", 0755) || mkdir("d4", 0755))
		die("mkdir");
	/* Not executable; a script without #!; two real programs; a plain file in PATH. */
	put("d2/prog", "#!/bin/sh\necho denied ran\n", 0644);
	put("d3/prog", "echo script ran as \"$0\" with \"$@\"\n", 0755);
	if (symlink("/bin/echo", "d4/prog") || symlink("/usr/bin/printenv", "d4/show") ||
	    symlink("/bin/echo", "prog"))
		die("symlink");
	put("file", "not a directory\n", 0644);
	run("missing", missing);
	run("denied", denied);
	run("denied then found", denied_then_found);
	run("script", script);
	run("found", found);
	run("not a directory", not_a_dir);
	run("current directory", current_dir);
	run("empty PATH", empty_path);
	run("no PATH", no_path);
	run("slash", slash);
	run("slash, denied", slash_denied);
	run("slash, script", slash_script);
	run("empty name", empty_name);
	run("execvpe's environment", own_env);
	run("execv", exec_v);
	run("execv, missing", exec_v_missing);
	run("execve", exec_ve);
	run("execve, script", exec_ve_script);
	return 0;
}
