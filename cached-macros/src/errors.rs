//! Collects errors so that one build reports every mistake it can find, not only the first:
//! each step records what goes wrong and goes on, and `check` reports it all at the end
//! (the way of serde_derive's `Ctxt`).

/// The errors met so far, merged with [`syn::Error::combine`] in the order they were found.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `result` as it is, its error also kept: once `check` has passed, every result
    /// tracked is `Ok`, so a `?` on it cannot fail.
    pub(crate) fn track<T>(&mut self, result: syn::Result<T>) -> syn::Result<T> {
        if let Err(error) = &result {
            self.push(error.clone());
        }
        result
    }

    /// `Ok(())` if nothing was pushed, or all the errors as one.
    pub(crate) fn check(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
