/* stdio and the shell over pipes: printf/fwrite into a pipe from a child,
 * fdopen+fgets, full buffering until fflush, popen for reading and writing,
 * system() with output redirected into a pipe, an exec'd filter. */
#include "common.h"

/* Print text line by line, indented, with visible end-of-text. */
static void show_text(const char *what, const char *buf, long n)
{
	printf("  %s (%ld bytes):\n", what, n);
	long i = 0;
	while (i < n) {
		long j = i;
		while (j < n && buf[j] != '\n')
			j++;
		printf("    |%.*s%s\n", (int)(j - i), buf + i, j < n ? "" : " <no newline>");
		i = j + 1;
	}
}

static void show_wait(const char *who, int st)
{
	if (st == -1)
		printf("  %s: -1 %s\n", who, errname_io(errno));
	else
		show_status_io(who, st);
}

int main(void)
{
	setup();
	alarm(10);
	int p[2], q[2], s[2], r[2];
	pid_t pid;
	static char buf[300000];
	long n;
	FILE *f;

	CASE("stdio_printf_from_child");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		if (dup2(p[1], 1) != 1)
			_exit(SETUP_FAIL);
		io_close(p[1]);
		printf("line %d\n", 1);
		printf("line %d\n", 2);
		printf("no newline");
		exit(0);
	}
	io_close(p[1]);
	n = read_all(p[0], buf, sizeof buf);
	show_text("parent read", buf, n);
	show_status_io("child", io_reap(pid));
	io_close(p[0]);

	CASE("stdio_fwrite_large_from_child");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		f = fdopen(p[1], "w");
		if (!f)
			_exit(SETUP_FAIL);
		for (int i = 0; i < 250000; i++)
			buf[i] = 'a' + i % 23;
		size_t w = fwrite(buf, 1, 250000, f);
		_exit(fclose(f) || w != 250000);
	}
	io_close(p[1]);
	memset(buf, 0, sizeof buf);
	n = read_all(p[0], buf, sizeof buf);
	{
		int ok = 1;
		for (long i = 0; i < n; i++)
			ok &= buf[i] == 'a' + i % 23;
		printf("  parent read %ld bytes, in order: %s\n", n, ok ? "yes" : "no");
	}
	show_status_io("child", io_reap(pid));
	io_close(p[0]);

	CASE("stdio_full_buffering_until_fflush");
	io_pipe(p);
	io_pipe(s);
	io_pipe(r);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		io_close(s[0]);
		io_close(r[1]);
		f = fdopen(p[1], "w");
		if (!f)
			_exit(SETUP_FAIL);
		fprintf(f, "buffered line\n");
		io_post(s[1]);
		io_wait(r[0]);
		fflush(f);
		io_post(s[1]);
		io_wait(r[0]);
		_exit(0);
	}
	io_close(p[1]);
	io_close(s[1]);
	io_close(r[0]);
	io_wait(s[0]);
	printf("  after fprintf: FIONREAD = %d\n", io_nread(p[0]));
	io_post(r[1]);
	io_wait(s[0]);
	printf("  after fflush: FIONREAD = %d\n", io_nread(p[0]));
	io_post(r[1]);
	show_status_io("child", io_reap(pid));
	io_close(p[0]);
	io_close(s[0]);
	io_close(r[1]);

	CASE("stdio_fdopen_fgets");
	io_pipe(p);
	IOSHOW(write(p[1], "line one\nline two\n", 18));
	IOSHOW(write(p[1], "\npartial", 8));
	io_close(p[1]);
	f = fdopen(p[0], "r");
	if (!f)
		die("fdopen");
	{
		char line[64];
		for (int i = 0; i < 5; i++) {
			char *l = fgets(line, sizeof line, f);
			if (l)
				printf("  fgets: \"%.*s\"%s\n", (int)strcspn(l, "\n"), l,
				       strchr(l, '\n') ? " + newline" : "");
			else
				printf("  fgets: NULL, feof=%d ferror=%d\n", feof(f) != 0, ferror(f) != 0);
		}
	}
	fclose(f);

	CASE("stdio_fgets_waits_for_newline");
	io_pipe(p);
	io_pipe(s);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		io_close(s[1]);
		if (write(p[1], "hel", 3) != 3)
			_exit(1);
		io_wait(s[0]);
		_exit(write(p[1], "lo\nrest", 7) != 7);
	}
	io_close(p[1]);
	io_close(s[0]);
	f = fdopen(p[0], "r");
	if (!f)
		die("fdopen");
	{
		char line[64];
		struct pollfd pf = { p[0], POLLIN, 0 };
		/* The helper waits: the first byte only after fgets has data. */
		while (poll(&pf, 1, -1) != 1)
			;
		io_post(s[1]);
		for (int i = 0; i < 3; i++) {
			char *l = fgets(line, sizeof line, f);
			if (l)
				printf("  fgets: \"%.*s\"%s\n", (int)strcspn(l, "\n"), l,
				       strchr(l, '\n') ? " + newline" : "");
			else
				printf("  fgets: NULL, feof=%d\n", feof(f) != 0);
		}
	}
	fclose(f);
	show_status_io("child", io_reap(pid));
	io_close(s[1]);

	CASE("stdio_fread_short_at_eof");
	io_pipe(p);
	IOSHOW(write(p[1], "0123456789", 10));
	io_close(p[1]);
	f = fdopen(p[0], "r");
	if (!f)
		die("fdopen");
	n = fread(buf, 1, 100, f);
	printf("  fread = %ld \"%.*s\", feof=%d\n", n, (int)n, buf, feof(f) != 0);
	fclose(f);

	CASE("stdio_popen_read");
	f = popen("echo hello; echo world", "r");
	if (!f)
		die("popen");
	{
		char line[64];
		while (fgets(line, sizeof line, f))
			printf("  popen read: %s", line);
	}
	show_wait("pclose", pclose(f));
	f = popen("printf 'no newline'; exit 7", "r");
	if (!f)
		die("popen");
	n = fread(buf, 1, 100, f);
	printf("  fread = %ld \"%.*s\"\n", n, (int)n, buf);
	show_wait("pclose", pclose(f));

	CASE("stdio_popen_write");
	f = popen("tr a-z A-Z", "w");
	if (!f)
		die("popen");
	fprintf(f, "  written through popen to tr\n");
	fputs("  second line\n", f);
	show_wait("pclose", pclose(f));
	f = popen("wc -c", "w");
	if (!f)
		die("popen");
	memset(buf, 'x', 100000);
	printf("  fwrite = %zu, wc -c says:\n", fwrite(buf, 1, 100000, f));
	show_wait("pclose", pclose(f));

	CASE("stdio_popen_reader_closes_early");
	/* pclose closes the read end while yes still writes: SIGPIPE. */
	f = popen("yes", "r");
	if (!f)
		die("popen");
	{
		char line[64];
		printf("  first line: %s", fgets(line, sizeof line, f) ? line : "(null)\n");
	}
	show_wait("pclose", pclose(f));

	CASE("stdio_system_stdout_into_pipe");
	io_pipe(p);
	{
		int saved = dup(1);
		if (saved < 0 || dup2(p[1], 1) != 1)
			die("dup2");
		int st = system("echo via system; echo second line");
		if (dup2(saved, 1) != 1)
			die("dup2");
		io_close(saved);
		io_close(p[1]);
		n = read_all(p[0], buf, sizeof buf);
		show_text("pipe got", buf, n);
		show_wait("system", st);
	}
	io_close(p[0]);

	CASE("stdio_system_writes_inherited_fd");
	io_pipe(p);
	if (pipe2(q, O_CLOEXEC))
		die("pipe2");
	{
		char cmd[128];
		snprintf(cmd, sizeof cmd, "printf 'to the inherited fd' >&%d", p[1]);
		show_wait("system", system(cmd));
		snprintf(cmd, sizeof cmd, "printf x 2>/dev/null >&%d", q[1]);
		show_wait("system to an O_CLOEXEC fd", system(cmd));
		snprintf(cmd, sizeof cmd, "exit 3");
		show_wait("system exit 3", system(cmd));
	}
	io_close(p[1]);
	n = read_all(p[0], buf, sizeof buf);
	show_text("pipe got", buf, n);
	io_close(q[1]);
	n = read_all(q[0], buf, sizeof buf);
	show_text("O_CLOEXEC pipe got", buf, n);
	io_close(p[0]);
	io_close(q[0]);

	CASE("stdio_exec_filter");
	/* A shell-style pipeline: parent | wc -c | parent. */
	io_pipe(p);
	io_pipe(q);
	if ((pid = io_fork()) == 0) {
		if (dup2(p[0], 0) != 0 || dup2(q[1], 1) != 1)
			_exit(SETUP_FAIL);
		closep(p);
		closep(q);
		execlp("wc", "wc", "-c", (char *)NULL);
		_exit(SETUP_FAIL);
	}
	io_close(p[0]);
	io_close(q[1]);
	memset(buf, 'y', 123457);
	{
		/* More than the pipe holds: wc reads while we write. */
		long w = 0;
		while (w < 123457) {
			long k = write(p[1], buf + w, 123457 - w);
			if (k <= 0)
				die("write");
			w += k;
		}
		printf("  wrote %ld bytes\n", w);
	}
	io_close(p[1]);
	n = read_all(q[0], buf, sizeof buf);
	show_text("wc -c", buf, n);
	show_status_io("wc", io_reap(pid));
	io_close(q[0]);
	return 0;
}
