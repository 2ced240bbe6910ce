/* What the shim still hands back to the kernel: a pipe passed to a program that runs
 * without the shim (here /sbin/ldconfig, statically linked, holding the write end while it
 * runs). The pipe goes back with the bytes queued in it, in order before what is written
 * after, and its reader sees end of file once the program and the writer are gone. (The
 * program writes elsewhere: `ipcshim diff` sees only processes with the shim. splice, tee
 * and sendfile are served: pipe_splice.c.)
 * (The kernel carries these pipes' data from the hand-back on, hence:)
 * kernel-pipes: allowed */
#include "common.h"

int main(void)
{
	int p[2];
	char buf[4096];
	setup();
	alarm(10);

	CASE("handback_to_a_static_program_keeps_queued_bytes");
	io_pipe(p);
	IOSHOW(write(p[1], "queued:", 7));
	pid_t pid = io_fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		if (nul < 0 || dup2(nul, 1) != 1)
			_exit(SETUP_FAIL);
		io_close(p[0]);
		execl("/sbin/ldconfig", "ldconfig", "--version", (char *)NULL);
		_exit(SETUP_FAIL);
	}
	show_status_io("ldconfig", io_reap(pid));
	IOSHOW(write(p[1], "after", 5));
	io_close(p[1]);
	long n = read_all(p[0], buf, sizeof buf - 1);
	buf[n] = 0;
	printf("  read until EOF: \"%s\"\n", buf);
	io_close(p[0]);
	return 0;
}
