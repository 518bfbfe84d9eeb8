//! The examples the Recommend card offers before any dataset is loaded: real MovieLens titles,
//! a viewing history and 20 candidates each. Data, not logic, so they live apart from the
//! reducer.

/// A built-in example: a viewing history and its candidates (real MovieLens titles).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Example {
    /// Button label.
    pub label: &'static str,
    /// History, oldest first.
    pub history: &'static [&'static str],
    /// Candidates.
    pub candidates: &'static [&'static str],
}

/// Examples offered on the page.
pub const EXAMPLES: [Example; 2] = [
    Example {
        label: "Thrillers",
        history: &[
            "GoldenEye",
            "Twelve Monkeys",
            "Seven (Se7en)",
            "The Usual Suspects",
            "Heat",
            "Casino",
            "Fargo",
            "Reservoir Dogs",
            "Pulp Fiction",
            "The Silence of the Lambs",
        ],
        candidates: &[
            "Taxi Driver",
            "Babe",
            "Toy Story",
            "Sense and Sensibility",
            "Crimson Tide",
            "Muppet Treasure Island",
            "Apollo 13",
            "The Birdcage",
            "Braveheart",
            "Clueless",
            "Star Wars",
            "The Lion King",
            "Jumanji",
            "Pocahontas",
            "Die Hard",
            "Beauty and the Beast",
            "Aladdin",
            "Batman Forever",
            "Mrs. Doubtfire",
            "Dumbo",
        ],
    },
    Example {
        label: "Family",
        history: &[
            "Toy Story",
            "Aladdin",
            "The Lion King",
            "Beauty and the Beast",
            "Babe",
            "Muppet Treasure Island",
            "Jumanji",
            "Pocahontas",
            "The Santa Clause",
            "Mrs. Doubtfire",
        ],
        candidates: &[
            "Dumbo",
            "Heat",
            "Casino",
            "Fargo",
            "Taxi Driver",
            "Seven (Se7en)",
            "Crimson Tide",
            "Reservoir Dogs",
            "Die Hard",
            "GoldenEye",
            "The Usual Suspects",
            "Braveheart",
            "Apollo 13",
            "Star Wars",
            "Clueless",
            "Twelve Monkeys",
            "The Birdcage",
            "Sense and Sensibility",
            "Batman Forever",
            "Pulp Fiction",
        ],
    },
];
