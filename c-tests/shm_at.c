/* shmat and shmdt: addresses, flags, permissions, removed and stale ids. */
#include "common.h"

static int g_id;

static void at_nobody(void *arg)
{
	int flg = *(int *)arg;
	errno = 0;
	void *p = shmat(g_id, NULL, flg);
	printf("  as nobody: shmat(id,NULL,%#o) = %s\n", flg,
	       p == (void *)-1 ? errname(errno) : "ok");
}

int main(void)
{
	setup();
	int id, id2;
	char *p, *q, *h;
	struct shmid_ds ds;

	CASE("at_kernel_addr");
	id = SHOW(shmget(0x10020001, 8192, IPC_CREAT | 0600));
	p = AT(shmat(id, NULL, 0), NULL);
	printf("  perms=%s\n", map_perms(p));
	p[0] = 'x';
	p[8191] = 'y';
	printf("  data=%c%c\n", p[0], p[8191]);
	stat_show(id);
	SHOW(shmdt(p));
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("at_data_zeroed");
	id = SHOW(shmget(0x10020002, 3 * 4096, IPC_CREAT | 0600));
	p = AT(shmat(id, NULL, 0), NULL);
	int nz = 0;
	for (int i = 0; i < 3 * 4096; i++)
		nz += p[i] != 0;
	printf("  nonzero bytes=%d\n", nz);
	SHOW(shmdt(p));

	CASE("at_given_addr");
	h = hole();
	p = AT(shmat(id, h, 0), h);
	p[5] = 5;
	q = AT(shmat(id, h + 16 * 4096, SHM_RDONLY), h + 16 * 4096);
	printf("  second view=%d\n", q[5]);
	SHOW(shmdt(p));
	SHOW(shmdt(q));

	CASE("at_unaligned");
	h = hole();
	AT(shmat(id, h + 1, 0), h);
	AT(shmat(id, h + 4095, 0), h);
	AT(shmat(id, h + 2048, SHM_RDONLY), h);

	CASE("at_rnd");
	p = AT(shmat(id, h + 123, SHM_RND), h);
	q = AT(shmat(id, h + 16 * 4096 + 4095, SHM_RND), h + 16 * 4096);
	SHOW(shmdt(p));
	SHOW(shmdt(q));
	p = AT(shmat(id, h, SHM_RND), h);
	SHOW(shmdt(p));

	CASE("at_rnd_low_remap");
	AT(shmat(id, (void *)123, SHM_RND | SHM_REMAP), NULL);
	AT(shmat(id, (void *)4095, SHM_RND | SHM_REMAP), NULL);

	CASE("at_remap_null");
	AT(shmat(id, NULL, SHM_REMAP), NULL);
	AT(shmat(id, NULL, SHM_REMAP | SHM_RDONLY), NULL);

	CASE("at_overlap_noremap");
	h = hole();
	q = mmap(h + 2 * 4096, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (q == MAP_FAILED)
		die("mmap");
	q[0] = 'a';
	AT(shmat(id, h + 2 * 4096, 0), h + 2 * 4096);
	AT(shmat(id, h, 0), h);
	AT(shmat(id, h + 4096, 0), h + 4096);
	p = AT(shmat(id, h + 3 * 4096, 0), h + 3 * 4096);
	printf("  old mapping kept=%c\n", q[0]);
	SHOW(shmdt(p));

	CASE("at_remap_over");
	p = AT(shmat(id, h, SHM_REMAP), h);
	printf("  perms=%s old data gone=%d view=%d\n", map_perms(h + 2 * 4096),
	       q[0] != 'a', p[5]);
	stat_show(id);
	SHOW(shmdt(p));
	printf("  after shmdt perms=%s\n", map_perms(h + 2 * 4096));

	CASE("at_exec_flags");
	p = AT(shmat(id, NULL, SHM_EXEC), NULL);
	printf("  SHM_EXEC perms=%s\n", map_perms(p));
	q = AT(shmat(id, NULL, SHM_EXEC | SHM_RDONLY), NULL);
	printf("  SHM_EXEC|SHM_RDONLY perms=%s\n", map_perms(q));
	SHOW(shmdt(p));
	SHOW(shmdt(q));
	p = AT(shmat(id, NULL, SHM_RDONLY), NULL);
	printf("  SHM_RDONLY perms=%s\n", map_perms(p));
	SHOW(shmdt(p));

	CASE("at_twice");
	p = AT(shmat(id, NULL, 0), NULL);
	q = AT(shmat(id, NULL, 0), NULL);
	SHOW(p != q);
	strcpy(p + 100, "through p");
	printf("  via q: %s\n", q + 100);
	stat_show(id);
	SHOW(shmdt(p));
	show_nattch(id);
	printf("  still readable via q: %s\n", q + 100);
	SHOW(shmdt(q));
	show_nattch(id);

	CASE("at_after_rmid");
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(shmctl(id, IPC_RMID, NULL));
	stat_show(id);
	q = AT(shmat(id, NULL, 0), NULL);
	printf("  shared data: %s\n", q + 100);
	stat_show(id);
	SHOW(shmget(0x10020002, 0, 0));
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmdt(p));
	show_nattch(id);
	SHOW(shmdt(q));
	stat_show(id);
	AT(shmat(id, NULL, 0), NULL);

	CASE("at_removed_unattached");
	id = SHOW(shmget(0x10020003, 4096, IPC_CREAT | 0600));
	SHOW(shmctl(id, IPC_RMID, NULL));
	AT(shmat(id, NULL, 0), NULL);
	AT(shmat(id, NULL, SHM_RDONLY), NULL);

	CASE("at_negative_id");
	AT(shmat(-1, NULL, 0), NULL);
	AT(shmat(INT_MIN, NULL, 0), NULL);
	AT(shmat(-1, (void *)1, 0), NULL);

	CASE("at_stale_id");
	id = SHOW(shmget(0x10020004, 4096, IPC_CREAT | 0600));
	AT(shmat(id + 32768, NULL, 0), NULL);
	AT(shmat(id + 1, NULL, 0), NULL);
	AT(shmat(id + 5 * 32768, NULL, 0), NULL);
	/* Index 0 was used and removed: same index, old sequence. */
	AT(shmat(0, NULL, 0), NULL);

	CASE("at_perm_nobody");
	static const int modes[] = { 0600, 0604, 0602, 0606, 0607 };
	static const int flgs[] = { 0, SHM_RDONLY, SHM_EXEC, SHM_RDONLY | SHM_EXEC };
	for (unsigned m = 0; m < sizeof modes / sizeof *modes; m++) {
		g_id = shmget(0x10020010 + m, 4096, IPC_CREAT | modes[m]);
		if (g_id < 0)
			die("shmget");
		printf("  mode %#o\n", modes[m]);
		for (unsigned f = 0; f < sizeof flgs / sizeof *flgs; f++)
			in_child(NOBODY, at_nobody, (void *)&flgs[f]);
		SHOW(shmctl(g_id, IPC_RMID, NULL));
	}

	CASE("at_size_not_page_multiple");
	id2 = SHOW(shmget(0x10020005, 100, IPC_CREAT | 0600));
	h = hole();
	p = AT(shmat(id2, h, 0), h);
	p[4095] = 1;
	printf("  last byte of page=%d perms after=%s\n", p[4095], map_perms(p + 4096));
	SHOW(shmctl(id2, IPC_STAT, &ds));
	printf("  segsz=%zu\n", ds.shm_segsz);
	SHOW(shmdt(p));
	SHOW(shmctl(id2, IPC_RMID, NULL));

	CASE("dt_not_attached");
	h = hole();
	q = mmap(h, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (q == MAP_FAILED)
		die("mmap");
	SHOW(shmdt(q));
	SHOW(shmdt(h + 8 * 4096));
	SHOW(shmdt(NULL));
	munmap(q, 4096);

	CASE("dt_unaligned");
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(shmdt(p + 1));
	SHOW(shmdt(p + 4095));
	show_nattch(id);
	SHOW(shmdt(p));

	CASE("dt_double");
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(shmdt(p));
	SHOW(shmdt(p));
	show_nattch(id);

	CASE("dt_middle");
	id2 = SHOW(shmget(0x10020006, 3 * 4096, IPC_CREAT | 0600));
	p = AT(shmat(id2, NULL, 0), NULL);
	SHOW(shmdt(p + 4096));
	SHOW(shmdt(p + 2 * 4096));
	show_nattch(id2);
	SHOW(shmdt(p));
	show_nattch(id2);
	SHOW(shmctl(id2, IPC_RMID, NULL));
	SHOW(shmctl(id, IPC_RMID, NULL));
	return 0;
}
