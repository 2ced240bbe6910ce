//! How much an AF_UNIX send charges its socket's send buffer: the `truesize` of the skbs
//! `unix_stream_sendmsg` and `unix_dgram_sendmsg` allocate (`net/core/skbuff.c`,
//! `net/unix/af_unix.c`), measured on this kernel through `SIOCOUTQ` (c-tests/unix_sndbuf.c).

/// `net.core.wmem_default` as the kernel ships it: a new socket's `sk_sndbuf` where the
/// sysctl cannot be read.
pub const SNDBUF_DEFAULT: u32 = 212_992;

const PAGE: usize = 4096;
/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))`.
const SKB_OVERHEAD: usize = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))`, at the end of every head.
const SHINFO: usize = 320;
/// `SKB_MAX_HEAD(0)`: a stream skb's head holds this much; the rest goes to page frags.
const STREAM_HEAD_MAX: usize = PAGE - SHINFO;
/// `UNIX_SKB_FRAGS_SZ`: a stream skb's page frags.
const STREAM_FRAGS_MAX: usize = 32768;
/// `SKB_MAX_ALLOC`: a datagram skb's head holds this much; the rest goes to page frags.
const DGRAM_HEAD_MAX: usize = (PAGE << 2) - SHINFO;
/// `MAX_SKB_FRAGS`.
const MAX_SKB_FRAGS: usize = 17;

/// The truesize of an skb with a kmalloc'd head of `head` bytes and `frags` bytes in pages
/// (kmalloc's caches, and its page allocations above them, come in powers of two).
fn truesize(head: usize, frags: usize) -> usize {
    let obj = head.next_multiple_of(64) + SHINFO;
    SKB_OVERHEAD + obj.next_power_of_two() + frags.next_multiple_of(PAGE)
}

/// The largest skb a stream send makes with send buffer `sndbuf` ("keep two messages in the
/// pipe"; at most a page's head and the frags).
pub fn stream_skb_max(sndbuf: u32) -> usize {
    ((sndbuf as usize >> 1).saturating_sub(64)).clamp(1, STREAM_HEAD_MAX + STREAM_FRAGS_MAX)
}

/// The truesize of a stream skb of `size` bytes.
pub fn stream_truesize(size: usize) -> usize {
    let frags = size.min(size.saturating_sub(STREAM_HEAD_MAX).next_multiple_of(PAGE));
    truesize(size - frags, frags)
}

/// The truesize of a datagram or seqpacket skb of `len` bytes.
#[inline]
pub fn dgram_truesize(len: usize) -> usize {
    let frags = if len > DGRAM_HEAD_MAX {
        (len - DGRAM_HEAD_MAX).min(MAX_SKB_FRAGS * PAGE).next_multiple_of(PAGE)
    } else {
        0
    };
    truesize(len - frags, frags)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SIOCOUTQ after one send on a fresh socketpair, on this machine's kernel.
    #[test]
    fn kernel_truesizes() {
        let stream = [
            (1, 768),
            (192, 768),
            (193, 1280),
            (1000, 2304),
            (3776, 4352),
            (3777, 4864),
            (4096, 4864),
            (5000, 6400),
            (8192, 8960),
            (16065, 17152),
            (30000, 30976),
            (36544, 37120),
        ];
        for (n, t) in stream {
            assert_eq!(stream_truesize(n), t, "stream {n}");
        }
        let dgram = [
            (1, 768),
            (193, 1280),
            (3777, 8448),
            (8000, 16640),
            (16064, 16640),
            (16065, 20736),
            (30000, 33024),
            (40000, 41216),
            (65536, 69888),
            (100000, 102656),
            (200000, 200960),
        ];
        for (n, t) in dgram {
            assert_eq!(dgram_truesize(n), t, "dgram {n}");
        }
        // 65536 bytes in two skbs: 36544 + 28992.
        assert_eq!(stream_skb_max(SNDBUF_DEFAULT), 36544);
        assert_eq!(stream_truesize(36544) + stream_truesize(28992), 67072);
    }

    /// An skb of n bytes spans at least n / PAGE queue buffers (one at least), and charges no
    /// more than BUF_CHARGE_MAX for each, and a stream skb no more than PARTIAL_SKB_MAX: a
    /// queue of few buffers is below its send buffer without their charges summed.
    #[test]
    fn buffer_charge_bound() {
        for n in 1usize..=1 << 20 {
            let bufs = n.div_ceil(PAGE);
            assert!(stream_truesize(n) <= bufs * crate::pipe::BUF_CHARGE_MAX, "stream {n}");
            assert!(dgram_truesize(n) <= bufs * crate::pipe::BUF_CHARGE_MAX, "dgram {n}");
        }
        // A stream skb is read in parts (records are taken whole): its largest charge.
        let largest = stream_skb_max(u32::MAX);
        assert!((1..=largest).all(|n| stream_truesize(n) <= crate::pipe::PARTIAL_SKB_MAX));
    }
}
