//! The MPI communicator (docs/DESIGN.md §16.2) on 1, 2 and 3 ranks of this machine.
//!
//! Run by hand (`cargo test --release --features mpi --test mpi_comm`), this binary starts
//! itself under `mpirun -n R --oversubscribe` for R = 1, 2, 3 and checks each run's exit; under
//! mpirun (`LGN_MPI_CASE` names the case) it is one rank of the job. Truths: exact sums of
//! integers-valued and awkward floats, the data each rank made, bitwise agreement between ranks.

use lgn::parallel::{self, agree, Comm, CommError};
use lgn::Error;
use std::process::Command;
use std::time::{Duration, Instant};

fn value(rank: usize, i: usize) -> f64 {
    // Awkward floats whose sum depends on the order of the additions.
    ((rank * 7919 + i * 104729) as f64).sin() * 10f64.powi((i % 7) as i32 - 3)
}

fn collectives(c: &dyn Comm) -> usize {
    let (r, n) = (c.rank(), c.size());
    assert_eq!(
        n,
        std::env::var("OMPI_COMM_WORLD_SIZE")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    let mut checks = 0;

    // Sum: integers exactly; awkward floats to 1e-15 of the exact (f64-compensated) sum, bitwise
    // identical on every rank and in every repetition, whatever the timing.
    let mut ints: Vec<f64> = (0..5).map(|i| (r * 10 + i) as f64).collect();
    c.sum(&mut ints).unwrap();
    for (i, s) in ints.iter().enumerate() {
        let want: usize = (0..n).map(|k| k * 10 + i).sum();
        assert_eq!(*s, want as f64);
    }
    checks += 1;
    let len = 1000;
    let mine: Vec<f64> = (0..len).map(|i| value(r, i)).collect();
    let mut first: Option<Vec<f64>> = None;
    for rep in 0..10 {
        // Ranks arrive in different orders in each repetition.
        std::thread::sleep(Duration::from_millis(((r * 3 + rep) % 4) as u64));
        let mut s = mine.clone();
        c.sum(&mut s).unwrap();
        for (i, v) in s.iter().enumerate() {
            let exact: f64 = (0..n).map(|k| value(k, i)).sum();
            let scale: f64 = (0..n).map(|k| value(k, i).abs()).sum();
            assert!(
                (v - exact).abs() <= 1e-15 * scale,
                "sum[{i}]: {v} vs {exact}"
            );
        }
        match &first {
            None => first = Some(s),
            Some(f) => assert!(f.iter().zip(&s).all(|(a, b)| a.to_bits() == b.to_bits())),
        }
    }
    let f = first.unwrap();
    let all = c.gather(0, &f).unwrap();
    if r == 0 {
        let all = all.unwrap();
        for other in &all {
            assert!(other
                .iter()
                .zip(&f)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    } else {
        assert!(all.is_none());
    }
    checks += 2;

    // Broadcast from every root; bytes of a length only the root knows.
    for root in 0..n {
        let mut b: Vec<f64> = if r == root {
            (0..7).map(|i| value(root, i)).collect()
        } else {
            vec![f64::NAN; 7]
        };
        c.broadcast(root, &mut b).unwrap();
        assert_eq!(b, (0..7).map(|i| value(root, i)).collect::<Vec<_>>());
        let mut bytes = if r == root {
            format!("from {root}: {}", "x".repeat(root * 100)).into_bytes()
        } else {
            vec![]
        };
        c.broadcast_bytes(root, &mut bytes).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!("from {root}: {}", "x".repeat(root * 100))
        );
    }
    assert!(matches!(
        c.broadcast(n, &mut [0.0]),
        Err(Error::Comm(CommError::Usage { .. }))
    ));
    checks += 3;

    // Neighbour exchange on a ring (a one-rank ring talks to itself): lengths depend on the
    // sender, two messages to each peer arrive in order.
    let (next, prev) = ((r + 1) % n, (r + n - 1) % n);
    let msg = |from: usize, k: usize| -> Vec<f64> {
        (0..from + 2 + k)
            .map(|i| (from * 1000 + k * 100 + i) as f64)
            .collect()
    };
    let (a, b) = (msg(r, 0), msg(r, 1));
    let mut from_prev0 = vec![0.0; prev + 2];
    let mut from_prev1 = vec![0.0; prev + 3];
    let mut from_next0 = vec![0.0; next + 2];
    let mut from_next1 = vec![0.0; next + 3];
    c.exchange(
        &[(next, &a), (next, &b), (prev, &a), (prev, &b)],
        &mut [
            (prev, &mut from_prev0),
            (prev, &mut from_prev1),
            (next, &mut from_next0),
            (next, &mut from_next1),
        ],
    )
    .unwrap();
    assert_eq!(from_prev0, msg(prev, 0));
    assert_eq!(from_prev1, msg(prev, 1));
    assert_eq!(from_next0, msg(next, 0));
    assert_eq!(from_next1, msg(next, 1));
    // A receive buffer of the wrong length is a typed error naming the peer.
    let mut wrong = vec![0.0; prev + 5];
    match c.exchange(&[(next, &a)], &mut [(prev, &mut wrong)]) {
        Err(Error::Comm(CommError::Size {
            peer,
            expected,
            got,
            ..
        })) => assert_eq!((peer, expected, got), (prev, prev + 5, prev + 2)),
        other => panic!("expected a size error, got {other:?}"),
    }
    checks += 2;

    // Gather of variable lengths.
    let g = c.gather(n - 1, &msg(r, 0)).unwrap();
    if r == n - 1 {
        let g = g.unwrap();
        assert_eq!(g.len(), n);
        for (k, v) in g.iter().enumerate() {
            assert_eq!(*v, msg(k, 0));
        }
    } else {
        assert!(g.is_none());
    }
    checks += 1;

    // agree: one failing rank makes every rank fail, the others with its message.
    let bad = n - 1;
    let local: lgn::Result<usize> = if r == bad {
        Err(Error::input("shard 7 is malformed"))
    } else {
        Ok(r)
    };
    match agree(c, local) {
        Err(Error::Comm(CommError::Peer { rank, msg })) => {
            assert_ne!(r, bad);
            assert_eq!(rank, bad);
            assert!(msg.contains("shard 7 is malformed"), "{msg}");
        }
        Err(Error::Input(m)) => {
            assert_eq!(r, bad);
            assert!(m.contains("shard 7"));
        }
        other => panic!("rank {r}: expected an agreed error, got {other:?}"),
    }
    assert_eq!(agree(c, Ok(r)).unwrap(), r);
    checks += 1;
    c.barrier().unwrap();
    checks
}

fn rank_main(case: &str) {
    let c = parallel::world().unwrap();
    match case {
        "collectives" => {
            let k = collectives(c.as_ref());
            println!("rank {} of {}: {k} checks passed", c.rank(), c.size());
        }
        "timeout" => {
            // The last rank never joins the sum: the others give up with a typed timeout.
            if c.rank() + 1 == c.size() {
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            let mut x = vec![1.0];
            let e = c.sum(&mut x).unwrap_err();
            assert!(matches!(e, Error::Comm(CommError::Timeout { .. })), "{e}");
            // The communicator refuses further use instead of touching pending buffers.
            assert!(matches!(
                c.barrier(),
                Err(Error::Comm(CommError::Broken { .. }))
            ));
            eprintln!("lgn: {e}");
            c.abort(3);
        }
        "killed" => {
            // The last rank dies by SIGKILL while the others wait in a sum.
            if c.rank() + 1 == c.size() {
                unsafe { libc::raise(libc::SIGKILL) };
            }
            let mut x = vec![1.0];
            let _ = c.sum(&mut x);
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown LGN_MPI_CASE {other}"),
    }
}

fn launch(ranks: usize, case: &str, timeout: &str) -> (std::process::Output, Duration) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd: Command = parallel::mpirun(ranks).expect("mpirun on the PATH (openmpi-bin)");
    cmd.arg(exe)
        .env("LGN_MPI_CASE", case)
        .env("LGN_MPI_TIMEOUT", timeout);
    let t = Instant::now();
    let out = cmd.output().expect("mpirun starts");
    (out, t.elapsed())
}

fn main() {
    if let Ok(case) = std::env::var("LGN_MPI_CASE") {
        rank_main(&case);
        return;
    }
    let mut passed = 0;
    for ranks in [1, 2, 3] {
        let (out, _) = launch(ranks, "collectives", "60");
        let so = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{ranks} ranks: {}\n{so}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(so.matches("checks passed").count(), ranks, "{so}");
        println!("mpi_comm: collectives on {ranks} ranks ... ok");
        passed += 1;
    }
    for ranks in [2, 3] {
        let (out, t) = launch(ranks, "timeout", "2");
        let se = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{se}");
        assert!(
            se.contains("no answer from the other ranks within 2 s"),
            "{se}"
        );
        assert!(
            t < Duration::from_secs(25),
            "{t:?}: the peers did not give up"
        );
        println!("mpi_comm: a silent rank gives a timeout on {ranks} ranks ({t:.1?}) ... ok");
        passed += 1;
        let (out, t) = launch(ranks, "killed", "30");
        assert!(!out.status.success());
        assert!(
            t < Duration::from_secs(25),
            "{t:?}: the peers of a killed rank hung"
        );
        println!("mpi_comm: a killed rank ends the job on {ranks} ranks ({t:.1?}) ... ok");
        passed += 1;
    }
    println!("{passed} passed, 0 failed");
}
