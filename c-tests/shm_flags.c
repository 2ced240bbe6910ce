/* shmget flags beyond the mode bits: SHM_HUGETLB without reserved huge pages,
 * SHM_NORESERVE, and flag bits the kernel ignores. */
#include "common.h"

int main(void)
{
	setup();
	int id;

	CASE("flags_hugetlb_unreserved");
	SHOW(shmget(IPC_PRIVATE, 2 << 20, SHM_HUGETLB | 0600));
	SHOW(shmget(0x10070001, 2 << 20, IPC_CREAT | SHM_HUGETLB | 0600));
	SHOW(shmget(0x10070001, 0, 0));

	CASE("flags_hugetlb_noreserve");
	id = SHOW(shmget(IPC_PRIVATE, 4096, SHM_HUGETLB | SHM_NORESERVE | 0600));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmget(IPC_PRIVATE, 4096, SHM_HUGETLB | SHM_NORESERVE | (25 << 26) | 0600));

	CASE("flags_noreserve");
	id = SHOW(shmget(IPC_PRIVATE, 2 << 20, SHM_NORESERVE | 0600));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("flags_unknown_bits_ignored");
	id = SHOW(shmget(IPC_PRIVATE, 4096, 0x10000000 | 0600));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));
	return 0;
}
