/* SHM_HUGETLB asks for the right to huge pages before it looks for them
 * (hugetlb_file_setup): an exec'd helper without CAP_IPC_LOCK and outside
 * vm.hugetlb_shm_group gets EPERM (with SHM_NORESERVE too), an unknown size is
 * still EINVAL first, and a member of that group or a holder of CAP_IPC_LOCK
 * (ambient, across the exec) gets what root gets.
 * remap_file_pages over an attachment maps the segment's own pages (shm_mmap):
 * from another offset, back, partly, past the segment's end (SIGBUS there),
 * read-only, with the kernel's EINVALs (prot, a range leaving the attachment,
 * a detached range); replacing the last attachment of a removed segment destroys
 * it first and fails with EINVAL, leaving the range unmapped, as LTP's shmctl05
 * loop expects. Run as root. */
#include "common.h"
#include <sys/prctl.h>
#include <linux/capability.h>

#define HUGE (2UL << 20)

static long rfp(void *addr, size_t size, int prot, size_t pgoff)
{
	return syscall(SYS_remap_file_pages, addr, size, prot, pgoff, 0);
}

static void huge_gets(void)
{
	SHOW(shmget(IPC_PRIVATE, HUGE, SHM_HUGETLB | 0600));
	int id = SHOW(shmget(IPC_PRIVATE, HUGE, SHM_HUGETLB | SHM_NORESERVE | 0600));
	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);
	SHOW(shmget(IPC_PRIVATE, HUGE, SHM_HUGETLB | (7 << 26) | 0600));
	SHOW(shmget(0x100a0001, HUGE, IPC_CREAT | SHM_HUGETLB | 0600));
}

static int helper(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d))
		die("capget");
	printf("  helper: euid=%d groups=%d cap_ipc_lock=%d\n", (int)geteuid(), getgroups(0, NULL),
	       !!(d[0].effective & (1u << CAP_IPC_LOCK)));
	huge_gets();
	return 0;
}

/* Child: drops to nobody with `groups` (and CAP_IPC_LOCK kept as an ambient capability if
 * `keep_lock`), then execs the helper. */
static void as_nobody(int ngroups, gid_t group, int keep_lock)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (keep_lock && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
			die("keepcaps");
		if (setgroups(ngroups, &group) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			die("drop privileges");
		if (keep_lock) {
			struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
			struct __user_cap_data_struct d[2] = { { 0 } };
			d[0].effective = d[0].permitted = d[0].inheritable = 1u << CAP_IPC_LOCK;
			if (syscall(SYS_capset, &h, d) ||
			    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_IPC_LOCK, 0, 0))
				die("capset");
		}
		execl("/proc/self/exe", "shm_hugetlb_remap", "helper", (char *)NULL);
		die("exec");
	}
	g_child = pid;
	int st = wait_child(pid);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		show_status("helper", st);
}

static gid_t hugetlb_group(void)
{
	FILE *f = fopen("/proc/sys/vm/hugetlb_shm_group", "r");
	unsigned g = 0;
	if (!f || fscanf(f, "%u", &g) != 1)
		die("hugetlb_shm_group");
	fclose(f);
	return g;
}

static void show_page(const char *what, const char *p)
{
	printf("  %s: \"%s\"\n", what, p);
}

static char *attach(int id, int flg)
{
	char *p = shmat(id, NULL, flg);
	if (p == (void *)-1)
		die("shmat");
	return p;
}

static int segment(int pages)
{
	int id = shmget(IPC_PRIVATE, pages * PAGE, 0600);
	if (id < 0)
		die("shmget");
	char *p = attach(id, 0);
	for (int i = 0; i < pages; i++)
		snprintf(p + i * PAGE, 32, "page %d", i);
	shmdt(p);
	return id;
}

static void remap_cases(void)
{
	CASE("remap_offsets");
	int id = segment(3);
	char *p = attach(id, 0);
	stat_show(id);
	SHOW(rfp(p, PAGE, 0, 2));
	show_page("first page now", p);
	show_page("second page", p + PAGE);
	SHOW(rfp(p, 2 * PAGE, 0, 1));
	show_page("first page now", p);
	show_page("second page now", p + PAGE);
	strcpy(p, "written through the remap");
	SHOW(rfp(p, 3 * PAGE, 0, 0));
	show_page("first page now", p);
	show_page("second page now", p + PAGE);
	/* Unaligned start and size are rounded down. */
	SHOW(rfp(p + 100, PAGE + 100, 0, 2));
	show_page("first page now", p);
	SHOW(rfp(p, 3 * PAGE, 0, 0));
	stat_show(id);

	CASE("remap_einval");
	SHOW(rfp(p, PAGE, PROT_READ, 0));
	SHOW(rfp(p, 4 * PAGE, 0, 0));
	SHOW(rfp(p + PAGE, 3 * PAGE, 0, 0));
	SHOW(rfp(p, 50, 0, 0));
	SHOW(rfp(p, PAGE, 0, ~0UL));
	show_page("first page still", p);

	CASE("remap_past_end");
	SHOW(rfp(p + PAGE, 2 * PAGE, 0, 2));
	show_page("second page now", p + PAGE);
	probe("touch past the segment's end", p + 2 * PAGE, 0);
	SHOW(rfp(p, 3 * PAGE, 0, 0));
	show_page("third page again", p + 2 * PAGE);

	CASE("remap_rdonly");
	char *r = attach(id, SHM_RDONLY);
	SHOW(rfp(r, PAGE, 0, 1));
	show_page("read-only first page now", r);
	probe("write to it", r, 1);
	SHOW(shmdt(r));

	CASE("remap_detached");
	SHOW(shmdt(p));
	SHOW(rfp(p, PAGE, 0, 0));

	CASE("remap_after_rmid");
	p = attach(id, 0);
	char *q = attach(id, 0);
	SHOW(shmctl(id, IPC_RMID, NULL));
	/* Another attachment keeps the segment: served. */
	SHOW(rfp(p, 3 * PAGE, 0, 1));
	show_page("first page now", p);
	show_nattch(id);
	SHOW(shmdt(q));
	/* Part of the last attachment: the split keeps it. */
	SHOW(rfp(p, PAGE, 0, 0));
	show_page("first page now", p);
	/* The whole last attachment: gone first, so the remap fails. */
	long n = 0;
	while (rfp(p, 3 * PAGE, 0, 0) == 0 && n < 100)
		n++;
	printf("  remaps before the failure: %ld (%s)\n", n, errname(errno));
	stat_show(id);
	SHOW(mprotect(p, PAGE, PROT_READ));
	SHOW(shmdt(p));
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "helper") == 0)
		return helper();
	setup();

	CASE("hugetlb_root");
	huge_gets();
	CASE("hugetlb_nobody");
	as_nobody(0, 0, 0);
	CASE("hugetlb_nobody_in_group");
	as_nobody(1, hugetlb_group(), 0);
	CASE("hugetlb_nobody_cap_ipc_lock");
	as_nobody(0, 0, 1);

	remap_cases();
	return 0;
}
