//! The unwinder std needs is linked in statically (libgcc_eh), so that the shim does not load
//! libgcc_s.so.1 into every process: that object's constructor runs about ten CPUID
//! instructions, each a hypervisor exit in a virtual machine (about 100 us per exec here).
//! rustc's version script keeps its symbols out of our dynamic symbol table.
fn main() {
    println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
}
