/// Who is calling: a user of this instance. User ids are local to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
}

impl Caller {
    pub fn new(user_id: impl Into<String>) -> Self {
        Caller {
            user_id: user_id.into(),
        }
    }
}
