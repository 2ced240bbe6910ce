/* Uses the shim does not serve itself: splice, tee and sendfile on a pipe (epoll is served,
 * see epoll_pipe.c). Under the shim the pipe is handed back to the kernel with its queued
 * bytes, so every answer below must still be the kernel's, and nothing written before the
 * hand-back may be lost.
 * (The kernel carries these pipes' data from the hand-back on, hence:)
 * kernel-pipes: allowed */
#include "common.h"
#include <sys/sendfile.h>

static void show_read(const char *what, int fd)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n < 0)
		printf("  read %s = -1 %s\n", what, errname(errno));
	else
		printf("  read %s = %zd \"%.*s\"\n", what, n, (int)n, buf);
}

int main(void)
{
	int p[2], q[2];
	setup();
	alarm(10);

	CASE("handback_splice_pipe_to_pipe");
	if (pipe(p) || pipe(q))
		die("pipe");
	SHOW(write(p[1], "hello world", 11));
	SHOW(splice(p[0], NULL, q[1], NULL, 5, 0));
	show_read("spliced", q[0]);
	show_read("left", p[0]);
	SHOW(write(p[1], "after", 5));
	show_read("written after", p[0]);
	close(p[0]); close(p[1]); close(q[0]); close(q[1]);

	CASE("handback_tee_keeps_the_data");
	if (pipe(p) || pipe(q))
		die("pipe");
	SHOW(write(p[1], "tee!", 4));
	SHOW(tee(p[0], q[1], 4, 0));
	show_read("copy", q[0]);
	show_read("original", p[0]);
	close(p[0]); close(p[1]); close(q[0]); close(q[1]);

	CASE("handback_sendfile_file_to_pipe");
	{
		int f = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (f < 0 || write(f, "from a file", 11) != 11)
			die("file");
		if (pipe(p))
			die("pipe");
		SHOW(write(p[1], "queued:", 7));
		off_t off = 0;
		SHOW(sendfile(p[1], f, &off, 11));
		printf("  offset now %ld\n", (long)off);
		show_read("all", p[0]);
		close(f);
		close(p[0]); close(p[1]);
	}

	return 0;
}
