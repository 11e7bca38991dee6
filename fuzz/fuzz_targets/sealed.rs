#![no_main]
//! Fuzzes `roundtable_seal::fuzz::sealed` (wrap lists, padding, sealed ciphertext and the inner change
//! inside it, HPKE unwrap); the corpus in `fuzz/corpus/sealed` is replayed by a normal test.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // Roundtable runs Automerge's decoders under `catch_unwind` (`parse_change`, `decode_inner`):
        // some of their panics on hostile input are expected and handled. libFuzzer's panic hook
        // would abort on them before they are caught, so panics raised inside Automerge are let
        // through silently; one that nothing in Roundtable catches still reaches libfuzzer-sys's
        // own `catch_unwind`, which aborts (replay the crash with the corpus test to see it).
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("/automerge-")) {
                abort(info);
            }
        }));
    },
    |data: &[u8]| roundtable_seal::fuzz::sealed(data)
);
