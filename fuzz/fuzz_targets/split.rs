//! Shared by the targets: cut the fuzzer's input into reads of varied
//! sizes (empty ones included), so every target can check that any split
//! of a stream gives the same result as the whole stream.

/// The input without its first byte (the seed of the cuts), and that input
/// cut into pieces of 0 to 8 bytes.
pub fn chunks(data: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let Some((&seed, input)) = data.split_first() else {
        return (data, vec![data]);
    };
    let mut state = u32::from(seed);
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = ((state >> 16) as usize % 9).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        out.push(piece);
        rest = tail;
    }
    (input, out)
}
