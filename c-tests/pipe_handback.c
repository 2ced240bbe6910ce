/* Uses the shim does not serve itself: splice, tee, sendfile and epoll on a pipe. Under the
 * shim the pipe is handed back to the kernel with its queued bytes, so every answer below
 * must still be the kernel's, and nothing written before the hand-back may be lost.
 * (The kernel carries these pipes' data from the hand-back on, hence:)
 * kernel-pipes: allowed */
#include "common.h"
#include <sys/epoll.h>
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

	CASE("handback_epoll_sees_queued_data");
	{
		if (pipe(p))
			die("pipe");
		SHOW(write(p[1], "before", 6));
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = p[0] };
		SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
		struct epoll_event out[4];
		int n = epoll_wait(ep, out, 4, 1000);
		printf("  epoll_wait = %d events=0x%x\n", n, n > 0 ? out[0].events : 0);
		show_read("queued before epoll", p[0]);
		SHOW(epoll_wait(ep, out, 4, 0));
		pid_t pid = fork();
		if (pid == 0) {
			if (write(p[1], "child", 5) != 5)
				_exit(1);
			_exit(0);
		}
		n = epoll_wait(ep, out, 4, 5000);
		printf("  epoll_wait after child write = %d events=0x%x\n", n, n > 0 ? out[0].events : 0);
		show_read("from child", p[0]);
		waitpid(pid, NULL, 0);
		close(p[1]);
		n = epoll_wait(ep, out, 4, 1000);
		printf("  epoll_wait after last writer = %d events=0x%x\n", n, n > 0 ? out[0].events : 0);
		show_read("at EOF", p[0]);
		close(ep);
		close(p[0]);
	}
	return 0;
}
