/* Two receivers on one stream socket, racing for the fds of messages that each carry one:
 * one takes them with receives of no data (unix_stream_read_generic copies nothing but
 * detaches the head message's fds), the other reads the bytes. Every fd sent is received
 * exactly once, by one or the other, whoever gets to its message first. The fds sent are of
 * /dev/null: which receiver closes how many is then no IPC call for `ipcshim diff`. */
#include "common.h"
#include <sys/mman.h>

#define MSGS 3000

/* Receives once with a buffer of cap bytes; returns the bytes read (-1 on error) and adds the
 * fds received to *fds, closing them. */
static long take(int s, size_t cap, int flags, long *fds)
{
	char data[1];
	int got[16], n = 0, mf = 0;
	long r = sk_recv_fds(s, data, cap, got, &n, 16, flags, &mf);
	for (int i = 0; i < n; i++)
		close(got[i]);
	*fds += n;
	return r;
}

int main(void)
{
	setup();
	CASE("stream_fds_taken_by_empty_and_full_reads");
	int sv[2];
	sk_pair(SOCK_STREAM, sv);
	int null = open("/dev/null", O_RDONLY);
	if (null < 0)
		die("open /dev/null");
	/* done, then each receiver's count: shared memory, as how many fds each took differs
	 * from run to run and `ipcshim diff` compares what goes through pipes. */
	long *shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		die("mmap");
	long *done = &shared[0];
	pid_t empty = io_fork();
	if (empty == 0) {
		long fds = 0;
		while (!__atomic_load_n(done, __ATOMIC_ACQUIRE))
			take(sv[1], 0, MSG_DONTWAIT, &fds);
		shared[1] = fds;
		_exit(0);
	}
	pid_t full = io_fork();
	if (full == 0) {
		long fds = 0, bytes = 0;
		while (bytes < MSGS) {
			long r = take(sv[1], 1, 0, &fds);
			if (r <= 0)
				break;
			bytes += r;
		}
		shared[2] = fds;
		_exit(bytes == MSGS ? 0 : 1);
	}
	for (int i = 0; i < MSGS; i++)
		if (sk_send_fds(sv[0], &null, 1, "x", 1) != 1)
			die("sendmsg");
	printf("  bytes reader: %s\n", io_reap(full) == 0 ? "read every byte" : "stopped early");
	__atomic_store_n(done, 1, __ATOMIC_RELEASE);
	io_reap(empty);
	printf("  fds received: %ld of %d\n", shared[1] + shared[2], MSGS);
	/* Nothing is left in flight: the queue is empty and a last read finds no fds. */
	long left = 0;
	IOSHOW(take(sv[1], 1, MSG_DONTWAIT, &left));
	printf("  fds left: %ld\n", left);
	return 0;
}
