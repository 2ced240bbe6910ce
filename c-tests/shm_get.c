/* shmget: size rules, limits, lookup, permissions, id allocation. */
#include "common.h"

static key_t g_key;

static void get_nobody(void *arg)
{
	int flg = *(int *)arg;
	errno = 0;
	int r = shmget(g_key, 0, flg);
	printf("  as nobody: shmget(%#x,0,%#o) = %s\n", (unsigned)g_key, flg,
	       r == -1 ? errname(errno) : "ok");
}

static void get_nobody_big(void *arg)
{
	(void)arg;
	SHOW(shmget(g_key, 1 << 20, 0));
	SHOW(shmget(g_key, 1 << 20, 0400));
	SHOW(shmget(g_key, 4096, 0400));
}

static void owner_mode0(void *arg)
{
	(void)arg;
	int id = SHOW(shmget(0x10010077, 4096, IPC_CREAT | 0));
	SHOW(shmget(0x10010077, 0, 0) == id);
	SHOW(shmget(0x10010077, 0, 0400));
	SHOW(shmget(0x10010077, 0, 0200));
	SHOW(shmctl(id, IPC_RMID, NULL));
}

int main(void)
{
	setup();
	int id, id2;
	struct shmid_ds ds;

	CASE("get_size0_create");
	SHOW(shmget(0x10010001, 0, IPC_CREAT | 0600));
	SHOW(shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600));

	CASE("get_size_min");
	id = SHOW(shmget(0x10010001, 1, IPC_CREAT | 0600));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("get_size_over_shmmax");
	SHOW(shmget(0x10010002, SIZE_MAX, IPC_CREAT | 0600));
	SHOW(shmget(IPC_PRIVATE, (size_t)LONG_MAX + 1, 0600));

	CASE("get_enoent");
	SHOW(shmget(0x10010003, 4096, 0600));
	SHOW(shmget(0x10010003, 0, 0));
	SHOW(shmget(0x10010003, 4096, IPC_EXCL | 0600));

	CASE("get_lookup_existing");
	id = SHOW(shmget(0x10010004, 8000, IPC_CREAT | 0600));
	SHOW(shmget(0x10010004, 8000, 0) == id);
	SHOW(shmget(0x10010004, 0, 0) == id);
	SHOW(shmget(0x10010004, 1, 0) == id);
	SHOW(shmget(0x10010004, 0, IPC_CREAT | 0666) == id);
	SHOW(shmget(0x10010004, 4096, IPC_CREAT) == id);
	stat_show(id);

	CASE("get_existing_larger");
	SHOW(shmget(0x10010004, 8001, 0));
	SHOW(shmget(0x10010004, 8192, IPC_CREAT | 0600));
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("get_excl");
	id = SHOW(shmget(0x10010005, 4096, IPC_CREAT | IPC_EXCL | 0600));
	SHOW(shmget(0x10010005, 4096, IPC_CREAT | IPC_EXCL | 0600));
	SHOW(shmget(0x10010005, 0, IPC_CREAT | IPC_EXCL));
	SHOW(shmget(0x10010005, 1 << 30, IPC_CREAT | IPC_EXCL));
	SHOW(shmget(0x10010005, 4096, IPC_EXCL | 0600) == id);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("get_private_twice");
	id = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	id2 = SHOW(shmget(IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | 0600));
	SHOW(id != id2);
	SHOW(shmctl(id, IPC_STAT, &ds));
	printf("  key=%#x\n", (unsigned)ds.shm_perm.__key);
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmctl(id2, IPC_RMID, NULL));

	CASE("get_mode_bits");
	id = SHOW(shmget(0x10010006, 4096, IPC_CREAT | 0751));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));
	id = SHOW(shmget(0x10010006, 4096, IPC_CREAT | SHM_NORESERVE | IPC_NOWAIT | 0640));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("get_mode_no_umask");
	mode_t old = umask(077);
	id = SHOW(shmget(0x10010007, 4096, IPC_CREAT | 0666));
	umask(old);
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("get_eacces_other");
	static const int modes[] = { 0600, 0640, 0604, 0602, 0606, 0000 };
	static const int flgs[] = { 0, 0400, 0200, 0600, 0004, 0100 };
	for (unsigned m = 0; m < sizeof modes / sizeof *modes; m++) {
		g_key = 0x10010010 + m;
		id = shmget(g_key, 4096, IPC_CREAT | modes[m]);
		if (id < 0)
			die("shmget");
		printf("  mode %#o\n", modes[m]);
		for (unsigned f = 0; f < sizeof flgs / sizeof *flgs; f++)
			in_child(NOBODY, get_nobody, (void *)&flgs[f]);
		SHOW(shmctl(id, IPC_RMID, NULL));
	}

	CASE("get_eacces_group");
	g_key = 0x10010020;
	id = SHOW(shmget(g_key, 4096, IPC_CREAT | 0640));
	SHOW(shmctl(id, IPC_STAT, &ds));
	ds.shm_perm.gid = NOBODY;
	SHOW(shmctl(id, IPC_SET, &ds));
	for (unsigned f = 0; f < 4; f++)
		in_child(NOBODY, get_nobody, (void *)&flgs[f]);
	SHOW(shmctl(id, IPC_RMID, NULL));

	/* The size check comes before the permission check. */
	CASE("get_size_before_eacces");
	g_key = 0x10010021;
	id = SHOW(shmget(g_key, 4096, IPC_CREAT | 0600));
	in_child(NOBODY, get_nobody_big, NULL);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("get_owner_mode0");
	in_child(1000, owner_mode0, NULL);

	CASE("get_root_bypasses_mode");
	id = SHOW(shmget(0x10010022, 4096, IPC_CREAT | 0));
	SHOW(shmget(0x10010022, 0, 0666) == id);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("get_key_after_rmid");
	id = SHOW(shmget(0x10010023, 4096, IPC_CREAT | 0600));
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmget(0x10010023, 0, 0));
	id2 = SHOW(shmget(0x10010023, 4096, IPC_CREAT | 0600));
	SHOW(id2 != id);
	SHOW(shmctl(id2, IPC_RMID, NULL));

	CASE("get_id_sequence");
	/* Indexes are handed out cyclically; the sequence number grows on wrap. */
	printf("  ids:");
	for (int i = 0; i < 70; i++) {
		id = shmget(IPC_PRIVATE, 4096, 0600);
		printf(" %d", id);
		if (id < 0 || shmctl(id, IPC_RMID, NULL))
			die("cycle");
	}
	printf("\n");
	id = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	id2 = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	int id3 = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	SHOW(shmctl(id2, IPC_RMID, NULL));
	id2 = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmctl(id2, IPC_RMID, NULL));
	SHOW(shmctl(id3, IPC_RMID, NULL));
	return 0;
}
