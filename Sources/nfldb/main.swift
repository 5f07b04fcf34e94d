import Foundation
print("nfldb")
