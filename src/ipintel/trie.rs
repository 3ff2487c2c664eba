//! A binary prefix trie. Each node that ends a listed prefix carries the categories listed
//! for it; after building, every such node holds the interned set of its own categories and
//! those of all shorter prefixes above it, so a lookup keeps only the deepest set it passes.

use std::collections::HashMap;

#[derive(Debug, Default, Clone, Copy)]
struct Node {
    child: [u32; 2],
    /// The interned set id (0 = none), once built.
    set: u32,
}

#[derive(Debug)]
pub struct Trie {
    nodes: Vec<Node>,
    /// While building: the categories listed for exactly the prefix ending at a node.
    own: HashMap<u32, Vec<usize>>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::default()],
            own: HashMap::new(),
        }
    }
}

fn bit(addr: &[u8], i: u8) -> usize {
    ((addr[(i / 8) as usize] >> (7 - i % 8)) & 1) as usize
}

impl Trie {
    pub fn insert(&mut self, addr: &[u8], len: u8, category: usize) {
        let mut at = 0usize;
        for i in 0..len {
            let b = bit(addr, i);
            let next = self.nodes[at].child[b];
            at = if next == 0 {
                self.nodes.push(Node::default());
                let id = self.nodes.len() - 1;
                self.nodes[at].child[b] = id as u32;
                id
            } else {
                next as usize
            };
        }
        let own = self.own.entry(at as u32).or_default();
        if !own.contains(&category) {
            own.push(category);
        }
    }

    /// Gives every node with categories the set id of its own plus inherited ones.
    pub fn resolve_sets(&mut self, intern: &mut impl FnMut(&[usize]) -> u32) {
        let mut stack: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new())];
        while let Some((at, mut inherited)) = stack.pop() {
            if let Some(own) = self.own.remove(&(at as u32)) {
                for c in own {
                    if !inherited.contains(&c) {
                        inherited.push(c);
                    }
                }
                inherited.sort_unstable();
                self.nodes[at].set = intern(&inherited);
            }
            for c in self.nodes[at].child {
                if c != 0 {
                    stack.push((c as usize, inherited.clone()));
                }
            }
        }
        self.own = HashMap::new();
        self.nodes.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The deepest set on the path of `addr` (0 = none).
    pub fn lookup(&self, addr: &[u8], bits: u8) -> u32 {
        let mut at = 0usize;
        let mut found = self.nodes[0].set;
        for i in 0..bits {
            let next = self.nodes[at].child[bit(addr, i)];
            if next == 0 {
                break;
            }
            at = next as usize;
            if self.nodes[at].set != 0 {
                found = self.nodes[at].set;
            }
        }
        found
    }
}
