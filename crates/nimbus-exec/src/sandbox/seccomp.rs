//! The seccomp filter of sandboxed runtimes: everything is allowed except what a function never
//! needs and what could reach outside its environment — mounting, namespaces, kernel modules,
//! kexec and reboot, tracing other processes, the kernel keyring, BPF, perf events, swap,
//! clocks, quotas and file handles. Denied calls fail with `EPERM`, as on Lambda; `clone3` fails
//! with `ENOSYS` so C libraries fall back to `clone`, whose namespace flags the filter can see.
//! `io_uring` is refused too (its submissions would run the denied calls without the filter
//! seeing them), and on x86-64 every x32 system call number (`__X32_SYSCALL_BIT` set), which
//! would otherwise reach the kernel under numbers the deny list does not name.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// System calls refused outright.
const DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_reboot,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_quotactl,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_lookup_dcookie,
    libc::SYS_syslog,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_fanotify_init,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// `clone` flags that would create namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The seccomp filters could not be built (an unsupported architecture, or a rule the backend
/// refused).
#[derive(Debug, thiserror::Error)]
#[error("seccomp filter: {0}")]
pub struct FilterError(String);

fn arch() -> Result<TargetArch, FilterError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| FilterError(format!("{e:?}")))
}

/// Compiles the filters: the deny list first, then `clone3` → `ENOSYS`. Installed in that order,
/// a call matched by either gets that filter's answer.
pub fn program() -> Result<Vec<BpfProgram>, FilterError> {
    let err = |e: seccompiler::BackendError| FilterError(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|s| (*s, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|f| {
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(*f as u64),
                *f as u64,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    rules.insert(libc::SYS_clone, clone_rules);
    // Socket options that pick the output interface: with one set, a failed route lookup
    // (the network namespace's `prohibit` routes) is taken as "on link", which would let
    // packets around those routes.
    let interface_options = [
        (libc::SOL_SOCKET, libc::SO_BINDTODEVICE),
        (libc::SOL_SOCKET, libc::SO_BINDTOIFINDEX),
        (libc::IPPROTO_IP, libc::IP_UNICAST_IF),
        (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_IF),
    ];
    let setsockopt_rules = interface_options
        .iter()
        .map(|(level, name)| {
            let eq = |arg: u8, v: i32| {
                SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v as u64)
            };
            SeccompRule::new(vec![eq(1, *level)?, eq(2, *name)?])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    rules.insert(libc::SYS_setsockopt, setsockopt_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(err)?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(err)?;
    let mut out = vec![
        deny.try_into().map_err(err)?,
        clone3.try_into().map_err(err)?,
    ];
    #[cfg(target_arch = "x86_64")]
    out.push(x32_filter());
    Ok(out)
}

/// x86-64 only: refuses (`ENOSYS`) every system call whose number has the x32 bit set. Written
/// as raw BPF because seccompiler matches exact numbers, not ranges.
#[cfg(target_arch = "x86_64")]
fn x32_filter() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let f = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        f(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        f(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        f(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        f(JGE_K, 0, 1, X32_SYSCALL_BIT),
        f(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
        f(RET_K, 0, 0, RET_ALLOW),
    ]
}

/// Installs the filters on the calling thread (after `no_new_privs`).
pub fn apply(programs: &[BpfProgram]) -> std::io::Result<()> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(std::io::Error::other)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_architecture() -> Result<(), FilterError> {
        let p = program()?;
        assert_eq!(p.len(), if cfg!(target_arch = "x86_64") { 3 } else { 2 });
        assert!(p[0].len() > DENIED.len());
        Ok(())
    }
}
